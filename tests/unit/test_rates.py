"""Rate cards as written: what a valid card holds, and each way a card is refused (as a whole, with the
line and the problem named)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from ringback.rates import EPOCH, MAX_FILE_BYTES, RatesError, load, parse

SMS = 'event_type = "sms.delivery_report"\nunit = "message"\nprice = "0.045"\ncurrency = "CNY"\n'
CDR = 'event_type = "call.cdr"\nunit = "minute"\nprice = "0.12"\ncurrency = "CNY"\n'


def card(*lines: str) -> bytes:
    return "".join(f"[[rates]]\n{line}\n" for line in lines).encode()


def test_a_card_reads_every_field_and_fills_the_defaults() -> None:
    parsed = parse(
        card(
            SMS,
            'tenant = "acme"\napp_id = "1400123456"\n' + CDR + 'increment_s = 6\nvalid_from = "2026-02-01"',
            'event_type = "call.cdr"\nunit = "second"\nprice = "0.002"\ncurrency = "CNY"\nvalid_from = 2026-03-01',
        )
    )
    sms, cdr, seconds = parsed.lines
    assert (sms.tenant, sms.app_id, sms.unit, sms.price, sms.increment_s, sms.valid_from) == (
        "",
        "",
        "message",
        Decimal("0.045"),
        0,
        EPOCH,
    )
    assert (cdr.tenant, cdr.app_id, cdr.increment_s, cdr.valid_from, cdr.line) == (
        "acme",
        "1400123456",
        6,
        dt.date(2026, 2, 1),
        2,
    )
    assert (seconds.increment_s, seconds.valid_from) == (1, dt.date(2026, 3, 1))
    assert parse(card(CDR)).lines[0].increment_s == 60
    assert parse(b"").lines == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (card(SMS.replace("sms.delivery_report", "sms.delivered")), "unknown event_type 'sms.delivered'"),
        (card(SMS.replace('"message"', '"page"')), "unknown unit 'page'"),
        (card(SMS.replace('"0.045"', '"0,045"')), "price '0,045' is not a decimal number"),
        (card(SMS.replace('"0.045"', "0.045")), "price must be a decimal string"),
        (card(SMS.replace('"0.045"', '"-1"')), "must be between 0"),
        (card(SMS.replace('"0.045"', '"NaN"')), "must be between 0"),
        (card(SMS.replace('"0.045"', '"0.0000001"')), "more than 6 decimal places"),
        (card(SMS + "increment_s = 60"), "increment_s applies to minute and second units only"),
        (card(CDR + "increment_s = 0"), "increment_s must be a whole number"),
        (card(CDR + "increment_s = true"), "increment_s must be a whole number"),
        (card(SMS.replace('currency = "CNY"', 'currency = "yuan"')), "not a three-letter code"),
        (card(SMS.replace('currency = "CNY"\n', "")), "currency is missing"),
        (card(SMS + 'valid_from = "2026-13-01"'), "is not a day"),
        (card(SMS + "valid_from = 2026-01-01T00:00:00"), "not a time"),
        (card(SMS + 'colour = "red"'), "unknown keys colour"),
        (card(SMS + 'tenant = ""'), "tenant must be a non-empty string"),
        (card(SMS, SMS.replace("0.045", "0.05")), "rates lines 1 and 2 both price 'sms.delivery_report'"),
        (card(SMS + 'valid_from = "2026-01-01"', SMS + 'valid_from = "2026-01-01"'), "rates lines 1 and 2"),
        (b"rates = 3\n", "'rates' must be a list of tables"),
        (b"[tenants]\n", "unknown keys tenants"),
        (b"[[rates]\n", "not valid TOML"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_card_that_does_not_validate_is_refused_naming_the_problem(text: bytes, message: str) -> None:
    with pytest.raises(RatesError) as refused:
        parse(text, "rates.toml")
    assert message in str(refused.value)
    assert str(refused.value).startswith("rates.toml")


def test_lines_of_one_key_from_different_days_are_a_price_change_not_a_duplicate() -> None:
    lines = parse(card(SMS, SMS.replace("0.045", "0.05") + 'valid_from = "2026-02-01"')).lines
    assert [line.price for line in lines] == [Decimal("0.045"), Decimal("0.05")]


def test_a_file_too_large_or_missing_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(RatesError, match="larger than"):
        load(big)
    with pytest.raises(RatesError, match="cannot be read"):
        load(tmp_path / "absent.toml")
