"""Strict reading of values: ASCII digits only, no sign the vendor never sends, readable numbers only.

Regressions: ``"-1"`` and ``-5`` were stored as charges; ``"９９９.００"``, ``"٥٠٠"`` and ``"６０"`` were read
as numbers (Python's ``\\d`` and ``str.isdigit()`` accept every script's digits and ``int()`` converts
them); ``"1-800-FLOWERS"`` became a Chinese mobile number.
"""

from __future__ import annotations

import ast
from decimal import Decimal

import orjson
import pytest

from ringback.normalizer.adapters import registry
from ringback.normalizer.adapters.callback_call import status_flag_state
from ringback.normalizer.amounts import decimal_amount, whole_number
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejected, Rejection
from ringback.normalizer.phones import to_e164
from ringback.normalizer.step import normalize_message
from ringback.normalizer.times import local_to_utc, unix_millis_to_utc, unix_seconds_to_utc
from ringback.runtime.avro import EventCodec
from ringback.runtime.raw import RawCallback
from tests.conftest import REPO_ROOT

CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")
CTX = Context(blank_event=CODEC.blank_event())
NORMALIZER_SOURCES = sorted((REPO_ROOT / "services" / "ringback" / "normalizer").rglob("*.py"))

FULL_WIDTH_999 = "９９９.００"
ARABIC_INDIC_500 = "٥٠٠"
FULL_WIDTH_60 = "６０"


def normalize(route: str, body: bytes) -> list:
    raw = RawCallback(
        route=route, ingest_id="i", received_at_us=1_763_700_000_000_000, remote_addr="", content_type="", body=body
    )
    return normalize_message(raw, registry(), CTX)


def reason(callable_, *args: object) -> str:
    with pytest.raises(Rejected) as caught:
        callable_(*args)
    return caught.value.reason_type


@pytest.mark.parametrize(
    "value",
    ["-1", -5, "+3", "-0", "-0.50", Decimal("-2.94"), "1e2", FULL_WIDTH_999, ARABIC_INDIC_500, "²", "0x10", "1_000"],
)
def test_amounts_are_unsigned_ascii_decimals(value: object) -> None:
    assert reason(decimal_amount, value, "oriamount") == "invalid_amount"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2.94", "2.940000"),
        (" 0.06 ", "0.060000"),
        (Decimal("2.94"), "2.940000"),
        (0, "0.000000"),
        ("", None),
        (None, None),
    ],
)
def test_amounts_that_are_read(value: object, expected: str | None) -> None:
    amount = decimal_amount(value, "oriamount")
    assert (None if amount is None else str(amount)) == expected


@pytest.mark.parametrize("value", ["-5", -5, "+5", FULL_WIDTH_60, "٦٠", "²", "1.0", "1" * 19, True])
def test_quantities_are_unsigned_ascii_whole_numbers(value: object) -> None:
    assert reason(whole_number, value, "duration") == "invalid_quantity"


def test_signed_values_say_so() -> None:
    with pytest.raises(Rejected, match="signed"):
        decimal_amount("-1", "oriamount")
    with pytest.raises(Rejected, match="signed"):
        whole_number("+5", "fee")


@pytest.mark.parametrize(
    "text", ["２０１６-02-02 11:19:36", "2016-02-02 １１:19:36", "٢٠١٦-02-02 11:19:36", "2016-02-02 11:19:36.０００"]
)
def test_local_times_are_ascii(text: str) -> None:
    assert reason(local_to_utc, text, "Asia/Shanghai", "stime") == "invalid_time"


@pytest.mark.parametrize("text", ["１４７０１９６８３５", "١٤٧٠١٩٦٨٣٥", "-1470196835", "+1470196835"])
def test_unix_seconds_are_ascii(text: str) -> None:
    assert reason(unix_seconds_to_utc, text, "start_calltime") == "invalid_time"


@pytest.mark.parametrize("text", ["１７６３７０４８０００００", "-1763704800000", "9" * 5000])
def test_unix_millis_are_ascii_and_bounded(text: str) -> None:
    assert reason(unix_millis_to_utc, text, "timeStamp") == "invalid_time"


@pytest.mark.parametrize("value", ["４", "٤", "+4", "-4", "4" * 5000, "3", "16191"])
def test_a_status_flag_is_one_ascii_bit(value: str) -> None:
    assert status_flag_state(value) == (None, "unknown")


def test_status_flag_bits_still_read() -> None:
    assert status_flag_state("4") == ("caller", "answered")
    assert status_flag_state("1024") == ("callee", "answered")


@pytest.mark.parametrize(
    ("number", "nationcode", "expected"),
    [
        ("1-800-FLOWERS", None, None),  # vanity: phonenumbers would read letters as digits
        ("1-800-FLOWERS", "1", None),
        ("13xxxxxxxxx", "86", None),
        ("１３８００１３８０００", "86", None),  # full-width digits
        ("13800138000", "８６", None),  # a country code that cannot be read
        ("13800138000", "abc", None),
        ("tel:+8613800138000", None, None),
        ("+86 138-0013-8000", None, "+8613800138000"),
        ("138.0013.8000", "86", "+8613800138000"),
        ("+1 (800) 356-9377", None, "+18003569377"),
        ("(0755) 8376-3333", "86", "+8675583763333"),
        ("1" * 5000, None, None),
        ("+", None, None),
        ("()", "86", None),
    ],
)
def test_only_ascii_digits_and_separators_make_a_number(
    number: str, nationcode: str | None, expected: str | None
) -> None:
    assert to_e164(number, nationcode) == expected


def test_a_vanity_number_is_kept_as_given_without_e164() -> None:
    body = {
        "cdr": [
            {
                "requestid": "r",
                "appid": "a",
                "fid": "4",
                "caller": "1-800-FLOWERS",
                "called": "13800138000",
                "duration": "1",
                "oriamount": "0.1",
                "stateDesc": "正常",
            }
        ]
    }
    (event,) = normalize("cdr-push", orjson.dumps(body))
    assert (event["from_number"], event["from_e164"]) == ("1-800-FLOWERS", None)
    assert event["to_e164"] == "+8613800138000"


@pytest.mark.parametrize(
    ("route", "body", "expected"),
    [
        ("cdr-push", {"cdr": [{"requestid": "r", "fid": "2", "oriamount": "-1"}]}, "invalid_amount"),
        ("cdr-push", {"cdr": [{"requestid": "r", "fid": "2", "oriamount": -5}]}, "invalid_amount"),
        ("cdr-push", {"cdr": [{"requestid": "r", "fid": "4", "oriamount": FULL_WIDTH_999}]}, "invalid_amount"),
        ("cdr-push", {"cdr": [{"requestid": "r", "fid": "5", "singleoriamount": ARABIC_INDIC_500}]}, "invalid_amount"),
        ("cdr-push", {"cdr": [{"requestid": "r", "fid": "2", "duration": FULL_WIDTH_60}]}, "invalid_quantity"),
        ("cdr-push", {"cdr": [{"requestid": "r", "fid": "2", "duration": -5}]}, "invalid_quantity"),
        ("tencent/voicecode", {"voicecode_callback": {"callid": "c", "result": "0", "fee": "-1"}}, "invalid_quantity"),
        ("tencent/voicecode", {"voicecode_callback": {"callid": "c", "result": "0", "fee": "١"}}, "invalid_quantity"),
        (
            "tencent/voiceprompt",
            {"voiceprompt_callback": {"callid": "c", "result": "0", "start_calltime": "１４７０１９６８２１"}},
            "invalid_time",
        ),
        (
            "tencent/sms-status",
            [{"sid": "s", "mobile": "1", "report_status": "SUCCESS", "user_receive_time": "２０２６-11-21 08:00:00"}],
            "invalid_time",
        ),
        ("callback-call/hangup", {"callId": "c", "duration": -5}, "invalid_quantity"),
        ("callback-call/hangup", {"callId": "c", "duration": "+5"}, "invalid_quantity"),
        ("callback-call/keypress", {"callId": "c", "key": "1", "timeStamp": "１７６３７０４８２０"}, "invalid_time"),
    ],
)
def test_every_adapter_reads_strictly(route: str, body: object, expected: str) -> None:
    (outcome,) = normalize(route, orjson.dumps(body))
    assert isinstance(outcome, Rejection), outcome
    assert outcome.reason_type == expected


def test_the_normalizer_never_asks_python_for_any_scripts_digit() -> None:
    """``\\d`` in a pattern and ``.isdigit()`` / ``.isdecimal()`` / ``.isnumeric()`` accept non-ASCII digits."""
    for source in NORMALIZER_SOURCES:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            where = f"{source.relative_to(REPO_ROOT)}:{node.lineno}"
            if node.func.attr in ("isdigit", "isdecimal", "isnumeric"):
                assert source.name == "digits.py", f"{where}: use digits.ascii_digits"
            if isinstance(node.func.value, ast.Name) and node.func.value.id == "re" and node.args:
                pattern = _constant_text(node.args[0])
                assert pattern is None or "\\d" not in pattern, f"{where}: \\d in a pattern; spell [0-9]"


def _constant_text(node: ast.expr) -> str | None:
    """The text of a constant pattern, also inside ``"…" % x`` and f-strings (their literal parts)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
        return node.value if isinstance(node.value, str) else node.value.decode("latin-1")
    if isinstance(node, ast.BinOp):
        return _constant_text(node.left)
    if isinstance(node, ast.JoinedStr):
        return "".join(_constant_text(part) or "" for part in node.values)
    return None
