"""Vendor times to UTC and numbers to E.164."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ringback.normalizer.outcome import Rejected
from ringback.normalizer.phones import to_e164
from ringback.normalizer.times import local_to_utc, unix_seconds_to_utc

UTC = UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015-10-17 08:03:04", datetime(2015, 10, 17, 0, 3, 4, tzinfo=UTC)),
        ("2016-02-02 11:19:36.000", datetime(2016, 2, 2, 3, 19, 36, tzinfo=UTC)),
        (
            "2016-02-0211:20:40.000",
            datetime(2016, 2, 2, 3, 20, 40, tzinfo=UTC),
        ),  # glued, as the vendor's own document shows
        ("2016-01-01 00:00:00.5", datetime(2015, 12, 31, 16, 0, 0, 500000, tzinfo=UTC)),
        ("", None),
        ("  ", None),
        (None, None),
    ],
)
def test_local_times(text: str | None, expected: datetime | None) -> None:
    assert local_to_utc(text, "Asia/Shanghai", "t") == expected


@pytest.mark.parametrize("text", ["yesterday", "2016-02-30 10:00:00", "2016/02/02 11:19:36", "1470196835"])
def test_unreadable_local_times_are_rejected(text: str) -> None:
    with pytest.raises(Rejected) as caught:
        local_to_utc(text, "Asia/Shanghai", "stime")
    assert caught.value.reason_type == "invalid_time" and "stime" in caught.value.message


def test_unix_seconds() -> None:
    assert unix_seconds_to_utc("1470196835", "t") == datetime(2016, 8, 3, 4, 0, 35, tzinfo=UTC)
    assert unix_seconds_to_utc("", "t") is None
    with pytest.raises(Rejected):
        unix_seconds_to_utc("14701968.35", "t")


@pytest.mark.parametrize(
    ("number", "nationcode", "expected"),
    [
        ("13810603954", "86", "+8613810603954"),
        ("075583763333", "86", "+8675583763333"),  # national trunk prefix folded away
        ("008613631686024", None, "+8613631686024"),  # click-to-call 0086 form
        ("13600007556", None, "+8613600007556"),  # bare Chinese mobile
        ("01053180002", None, "+861053180002"),  # Beijing landline
        ("13xxxxxxxxx", "86", None),  # masked
        ("", "86", None),
        ("2016010000000213", None, None),  # not a phone number
    ],
)
def test_e164(number: str, nationcode: str | None, expected: str | None) -> None:
    assert to_e164(number, nationcode) == expected


def test_the_chinese_mobile_fast_path_agrees_with_phonenumbers() -> None:
    import random

    import phonenumbers

    from ringback.normalizer.phones import _parsed_e164

    rng = random.Random(3)
    samples = [f"1{rng.randint(0, 9)}{rng.randint(0, 999_999_999):09d}" for _ in range(3000)]
    samples += (
        ["0086" + s for s in samples[:300]]
        + ["+86" + s for s in samples[300:600]]
        + ["86" + s for s in samples[600:900]]
    )
    samples += ["12345678901", "10086", "1380013800", "138001380000", "8613800138000"]
    for number in samples:
        for code in ("86", None):
            fast = to_e164(number, code)
            slow = _parsed_e164(number.replace("+", "00", 1) if number.startswith("+") else number, code or "", "CN")
            if number.startswith("00"):
                slow = _parsed_e164(number, "", "CN")
            reference = slow
            assert fast == reference, (number, code, fast, reference)
    assert phonenumbers.is_possible_number(phonenumbers.parse("+8613800138000"))


def _carrier_and_region_by_phonenumbers(e164: str) -> tuple[str | None, str | None]:
    """The answer as phonenumbers' own carrier and geocoder functions give it, number parsed."""
    import phonenumbers
    import phonenumbers.carrier
    import phonenumbers.geocoder

    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None, None
    carrier = phonenumbers.carrier.name_for_number(parsed, "en") or None
    return carrier, phonenumbers.geocoder.description_for_number(parsed, "en") or None


def test_carrier_and_region_agree_with_phonenumbers() -> None:
    import random

    from ringback.normalizer.phones import CN_MOBILE_SEGMENT, carrier_and_region

    rng = random.Random(5)
    mobiles = [f"+861{rng.randint(3, 9)}{rng.randint(0, 999_999_999):09d}" for _ in range(4000)]
    expected = {}
    for number in mobiles:  # a Chinese mobile answers as the first number of its segment
        first = number[:CN_MOBILE_SEGMENT].ljust(len(number), "0")
        expected[number] = _carrier_and_region_by_phonenumbers(first)
        assert carrier_and_region(number) == expected[number], number
    for number in mobiles:  # and so again, now that its segment's answer is kept
        assert carrier_and_region(number) == expected[number], number
    others = [
        "+8675512345678",  # Shenzhen landline
        "+861012345678",  # Beijing landline
        "+8640012345678",
        "+14155552671",
        "+442079460958",
        "+447700900123",
        "+85291234567",
        "+99912345",
        "+8612",
        "+0",
        "13813800138",  # not E.164: no answer, Chinese mobile digits or not
        "8613800138000",
    ]
    others += [f"+{rng.randint(1, 999)}{rng.randint(0, 10 ** rng.randint(4, 11)):d}" for _ in range(2000)]
    for number in others:
        assert carrier_and_region(number) == _carrier_and_region_by_phonenumbers(number), number
