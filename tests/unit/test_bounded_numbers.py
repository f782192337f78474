"""Numbers are judged by their written width before anything makes them values.

The regression: a CDR push of 150 bytes, ``"oriamount":1e-999999999``, took the normalizer from 172 MB
to 3.97 GB and ten seconds of CPU — ``format(value, "f")`` wrote the number out in full before any
digit limit looked at it — and a larger exponent exhausts memory on a message that is then never
committed, so it fails the same way forever. A number of more than ``NUMBER_MAX_DIGITS`` digits or
an exponent beyond ``±NUMBER_MAX_EXPONENT`` now refuses its body (``number_out_of_range``); an amount
given as a JSON number is judged by its size before its digits are written out.

Work is measured as the process's CPU time (``time.process_time``) and the peak of memory Python
allocated (``tracemalloc``) while one body is normalized by the worker's ``normalize_message``, so the
whole adapter path of every route is covered.
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ringback.normalizer.adapters import registry
from ringback.normalizer.amounts import decimal_amount, whole_number
from ringback.normalizer.digits import NUMBER_MAX_DIGITS, NUMBER_MAX_EXPONENT, number_out_of_range
from ringback.normalizer.event import Context
from ringback.normalizer.jsonbody import NUMBER_OUT_OF_RANGE, parse_json
from ringback.normalizer.outcome import Outcome, Rejected, Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.raw import RawCallback
from tests.conftest import REPO_ROOT
from tests.unit.hostile_bodies import ENVELOPES, READ_FIELDS, Envelope

CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")
CTX = Context(blank_event=CODEC.blank_event())
CDR = next(envelope for envelope in ENVELOPES if envelope.route == "cdr-push")

# Budgets for one body of at most 1 KB. Measured over 1,000 generated bodies: at most 6 ms of CPU
# (median 0.5 ms) and a 23 KiB peak (median 8 KiB). The budgets leave room for a slow, shared machine
# and first-use caches (phone-number metadata of another country), and stay thousands of times below
# the regression (10 s, 4 GB).
CPU_BUDGET_S = 0.25
MEMORY_BUDGET_BYTES = 2 * 1024 * 1024
MAX_BODY_BYTES = 1024

REPRO = (
    b'{"cdr":[{"requestid":"MONEY-1","appid":"appM","fid":"2","tel":"13800000001",'
    b'"stime":"2026-12-01 11:19:36","duration":"10","oriamount":1e-999999999}]}'
)


@dataclass(frozen=True)
class Cost:
    cpu_s: float
    peak_bytes: int


@contextmanager
def measured() -> Iterator[list[Cost]]:
    """CPU time and peak Python allocation of the block (one entry appended when it ends)."""
    found: list[Cost] = []
    gc.collect()
    gc.disable()  # a collection's cost depends on the whole heap, not on this body
    tracemalloc.start()
    started = time.process_time()
    try:
        yield found
    finally:
        cpu_s = time.process_time() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        gc.enable()
        found.append(Cost(cpu_s, peak))


def raw(route: str, body: bytes) -> RawCallback:
    return RawCallback(
        route=route, ingest_id="wide", received_at_us=1_763_700_000_000_000, remote_addr="", content_type="", body=body
    )


def normalized_within_budget(route: str, body: bytes) -> list[Outcome]:
    with measured() as cost:
        outcomes = normalize_message(raw(route, body), registry(), CTX)
    (spent,) = cost
    assert outcomes
    assert not any(isinstance(o, Rejection) and o.reason_type == "internal_error" for o in outcomes), outcomes
    assert spent.cpu_s < CPU_BUDGET_S, f"{spent.cpu_s:.2f} s of CPU for {body[:120]!r}"
    assert spent.peak_bytes < MEMORY_BUDGET_BYTES, f"{spent.peak_bytes / 2**20:.1f} MiB for {body[:120]!r}"
    return outcomes


def whole_request_refused(outcomes: list[Outcome]) -> Rejection:
    (outcome,) = outcomes
    assert isinstance(outcome, Rejection), outcome
    assert outcome.report_index is None
    return outcome


def short_id(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > 64:
        return f"{'-' if value < 0 else ''}int-of-{value.bit_length()}-bits"
    text = str(value)
    return text if len(text) <= 24 else f"{text[:12]}…{len(text)}-chars"


@pytest.fixture(scope="module", autouse=True)
def warm() -> None:
    """First use loads what every later body shares (adapters, zone data, phone-number metadata)."""
    for envelope in ENVELOPES:
        normalize_message(raw(envelope.route, envelope.one_object(envelope.members())), registry(), CTX)


# --- the regression ---


def test_the_reported_body_is_refused_for_its_number_within_the_budget() -> None:
    assert len(REPRO) < 160
    refused = whole_request_refused(normalized_within_budget("cdr-push", REPRO))
    assert refused.reason_type == NUMBER_OUT_OF_RANGE
    assert "1e-999999999" in refused.message and f"±{NUMBER_MAX_EXPONENT}" in refused.message


@pytest.mark.parametrize(
    "value",
    [
        Decimal("1e-999999999"),
        Decimal("1e999999999"),
        Decimal("9.99e999999999999999"),
        Decimal("-0e-999999999"),
        Decimal("-1e-999999999"),
        Decimal("NaN"),
        Decimal("-Infinity"),
        Decimal("sNaN"),
        10**5000,
        -(10**5000),
    ],
    ids=short_id,
)
def test_an_amount_is_judged_by_its_size_before_its_digits_are_written(value: object) -> None:
    with measured() as cost, pytest.raises(Rejected) as caught:
        decimal_amount(value, "oriamount")
    assert caught.value.reason_type == "invalid_amount"
    assert len(caught.value.message) < 200
    assert cost[0].peak_bytes < 64 * 1024, f"{cost[0].peak_bytes} bytes"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("2.94e0"), "2.940000"),
        (Decimal("294E-2"), "2.940000"),
        (Decimal("0e-999999999"), "0.000000"),  # zero, however it is written
        (Decimal("0E+999999999"), "0.000000"),
        (Decimal("1.5e-5"), "0.000015"),
        (Decimal("999999999999.999999"), "999999999999.999999"),
        (Decimal("1.2E+11"), "120000000000.000000"),
        (Decimal("2.9400000000000000000000000000"), "2.940000"),
    ],
    ids=str,
)
def test_amounts_given_as_numbers_within_their_size_are_read(value: Decimal, expected: str) -> None:
    amount = decimal_amount(value, "oriamount")
    assert amount is not None and str(amount) == expected


def test_an_amount_too_large_or_too_precise_says_so() -> None:
    with pytest.raises(Rejected, match="more than 12 integer digits"):
        decimal_amount(Decimal("1E+12"), "oriamount")
    with pytest.raises(Rejected, match="more than 6 decimal places"):
        decimal_amount(Decimal("1E-7"), "oriamount")
    with pytest.raises(Rejected, match="too long for an amount"):
        decimal_amount("1." + "0" * NUMBER_MAX_DIGITS, "oriamount")


@pytest.mark.parametrize(
    "value", [Decimal("1e999999999"), Decimal("1E+2"), "1" * 100_000, 10**5000, 2**63], ids=short_id
)
def test_a_quantity_is_judged_before_it_is_converted(value: object) -> None:
    with measured() as cost, pytest.raises(Rejected) as caught:
        whole_number(value, "duration")
    assert caught.value.reason_type == "invalid_quantity"
    assert cost[0].peak_bytes < 64 * 1024 + (len(value) if isinstance(value, str) else 0)


# --- the width of a written number ---


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "-0",
        "-0.0",
        "2.94",
        "2.94e0",
        "1e-40",
        "1E+40",
        "-1e40",
        "1e-0000000000000000000000000000040",  # leading zeros say nothing of the size
        "9" * NUMBER_MAX_DIGITS,
        "-" + "9" * NUMBER_MAX_DIGITS,
        "0." + "0" * (NUMBER_MAX_DIGITS - 2) + "1",
        "18446744073709551615",
    ],
    ids=short_id,
)
def test_numbers_as_wide_as_vendor_values_pass(text: str) -> None:
    assert number_out_of_range(text) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("1e-999999999", "exponent -999999999"),
        ("1e999999999999999999999999999999", "exponent"),
        ("1e41", "exponent 41"),
        ("1E-41", "exponent -41"),
        ("1e309", "exponent 309"),
        ("9" * (NUMBER_MAX_DIGITS + 1), f"{NUMBER_MAX_DIGITS + 1} digits"),
        ("0." + "0" * NUMBER_MAX_DIGITS + "1", f"{NUMBER_MAX_DIGITS + 2} digits"),
        ("1" * 1_000_000, "1000000 digits"),
    ],
    ids=short_id,
)
def test_wider_numbers_say_why(text: str, says: str) -> None:
    why = number_out_of_range(text)
    assert why is not None and says in why
    assert len(why) < 200  # a million digits are not quoted back


# --- every route, every path through the reader ---


def with_number(envelope: Envelope, field: str, number: bytes) -> bytes:
    """The envelope's readable report with ``field`` set to the written ``number`` (not a string)."""
    marker = "\x00number"
    members = orjson.dumps({**envelope.report, field: marker})[1:-1]
    return envelope.one_object(members.replace(orjson.dumps(marker), number))


@pytest.mark.parametrize(
    "number",
    [
        b"1e-999999999",  # orjson reads 0.0: refused when the body is read again for its floats
        b"0." + b"0" * 60 + b"1",  # no exponent, too many digits
        b"1e309",  # orjson refuses the body ("number is infinity"): the reason is searched for
        b"-" + b"9" * 400,
        b"9" * 10_000,  # beyond Python's int-from-text limit (4,300 digits)
    ],
    ids=lambda number: number[:16].decode(),
)
@pytest.mark.parametrize("envelope", ENVELOPES, ids=lambda envelope: envelope.name)
def test_every_route_refuses_a_body_holding_a_number_too_wide(envelope: Envelope, number: bytes) -> None:
    for field in (*envelope.report, "unknown_field"):
        body = with_number(envelope, field, number)
        outcomes = normalize_message(raw(envelope.route, body), registry(), CTX)
        refused = whole_request_refused(outcomes)
        assert refused.reason_type == NUMBER_OUT_OF_RANGE, (field, refused)


@pytest.mark.parametrize("envelope", ENVELOPES, ids=lambda envelope: envelope.name)
def test_digits_inside_strings_are_no_number(envelope: Envelope) -> None:
    """A long digit string is text: read by the field's own rules, never refused as a number."""
    body = envelope.one_object(envelope.members() + b',"note":"' + b"9" * 2000 + b'","e":"1e-999999999"')
    outcomes = normalize_message(raw(envelope.route, body), registry(), CTX)
    assert not any(isinstance(o, Rejection) for o in outcomes), outcomes
    body = b'{"note":"' + b"9" * 2000 + b'"'  # not JSON (never closed): the parser's reason, not a number's
    (refused,) = normalize_message(raw(envelope.route, body), registry(), CTX)
    assert isinstance(refused, Rejection) and refused.reason_type == "invalid_json"


def test_numbers_as_wide_as_vendor_values_are_still_read() -> None:
    wide = "1" + "0" * (NUMBER_MAX_DIGITS - 1)
    members = CDR.members().replace(b'"oriamount":"2.94"', b'"oriamount":2.94e0,"wide":' + wide.encode())
    (event,) = normalize_message(raw("cdr-push", CDR.one_object(members)), registry(), CTX)
    assert not isinstance(event, Rejection), event
    assert str(event["charge"]) == "2.940000"
    assert event["attributes"]["wide"] == wide


def test_the_reader_refuses_before_making_values() -> None:
    """Straight through ``parse_json``: both the hooks of the second reading and the search after a
    refusal by orjson, also in a body repaired for a missing comma."""
    for body in (
        b'{"a":1.5,"b":1e-999999999}',
        b'{"a":1,"b":1e99999}',
        b'{"a":"x""b":1e-999999999}',
        b'{"a":"x""b":1e99999}',
        b"[" + b"1" * 50 + b"]",
    ):
        for exact in (False, True):
            with pytest.raises(Rejected) as caught:
                parse_json(body, exact_numbers=exact)
            assert caught.value.reason_type == NUMBER_OUT_OF_RANGE, body


@pytest.mark.parametrize("body", [b"[NaN]", b"[Infinity]", b"[-Infinity]", b'{"a":1e-999999999', b"[1e5e5]"])
def test_what_is_not_json_stays_invalid_json_or_a_number_refusal(body: bytes) -> None:
    with pytest.raises(Rejected) as caught:
        parse_json(body, exact_numbers=True)
    assert caught.value.reason_type in ("invalid_json", NUMBER_OUT_OF_RANGE)
    if b"999999999" in body:
        assert caught.value.reason_type == NUMBER_OUT_OF_RANGE


# --- the property: any body of at most 1 KB, hostile numbers anywhere ---

NAMED_NUMBERS = [
    b"1e-999999999",
    b"1E+999999999",
    b"-0e-4294967296",
    b"0e999999999999999999999",
    b"1e309",
    b"-1e309",
    b"1e-324",
    b"2.2250738585072014e-308",
    b"1.7976931348623157e308",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"-0",
    b"-0.0",
    b"0",
    b"18446744073709551616",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"1" * 600,
    b"0." + b"0" * 600 + b"1",
    b"1." + b"0" * 600,
]
DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=700)


@st.composite
def written_numbers(draw: Callable[[st.SearchStrategy[Any]], Any]) -> bytes:
    """A JSON number's text (or almost one): a sign, digits, a fraction, an exponent of any size."""
    text = draw(st.sampled_from(["", "-"])) + draw(DIGITS)
    if draw(st.booleans()):
        text += "." + draw(DIGITS)
    if draw(st.booleans()):
        exponent = draw(st.one_of(st.integers(-(10**30), 10**30), st.integers(-60, 60)))
        text += draw(st.sampled_from(["e", "E"])) + draw(st.sampled_from(["", "+"])) * (exponent >= 0) + str(exponent)
    return text.encode()


NUMBERS = st.one_of(st.sampled_from(NAMED_NUMBERS), written_numbers())


@st.composite
def placed(draw: Callable[[st.SearchStrategy[Any]], Any]) -> bytes:
    """A number as a value: bare, quoted, or nested in arrays (a number where a report belongs too)."""
    number = draw(NUMBERS)
    form = draw(st.sampled_from(["bare", "quoted", "nested", "many"]))
    if form == "quoted":
        return b'"' + number + b'"'
    if form == "nested":
        depth = draw(st.integers(1, 80))
        return b"[" * depth + number + b"]" * depth
    if form == "many":
        return b"[" + b",".join([number] * draw(st.integers(2, 40))) + b"]"
    return number


@settings(
    # Each example is measured under tracemalloc (slow); `make test-all` draws many more.
    max_examples=int(os.environ.get("RINGBACK_PROPERTY_EXAMPLES", "100")),
    deadline=None,  # the budget is asserted on CPU time, which a busy machine does not inflate
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    envelope=st.sampled_from(ENVELOPES),
    fields=st.lists(st.sampled_from([*READ_FIELDS, "unknown_field"]), min_size=1, max_size=4, unique=True),
    values=st.lists(placed(), min_size=4, max_size=4),
    as_report=st.booleans(),
)
@example(envelope=CDR, fields=["oriamount"], values=[b"1e-999999999"] * 4, as_report=False)
@example(envelope=CDR, fields=["duration"], values=[b"1E+999999999"] * 4, as_report=False)
def test_any_body_of_a_kilobyte_with_hostile_numbers_is_read_within_budget(
    envelope: Envelope, fields: list[str], values: list[bytes], as_report: bool
) -> None:
    if as_report:  # a number (or arrays of them) where the report belongs
        body = envelope.prefix + values[0] + envelope.suffix
    else:
        marker = "\x00number-{}"
        report = {**envelope.report, **{field: marker.format(i) for i, field in enumerate(fields)}}
        members = orjson.dumps(report)[1:-1]
        for i in range(len(fields)):
            members = members.replace(orjson.dumps(marker.format(i)), values[i])
        body = envelope.one_object(members)
    body = body[:MAX_BODY_BYTES]  # cut where it falls: a body cut short is hostile too
    normalized_within_budget(envelope.route, body)


@pytest.mark.parametrize("envelope", ENVELOPES, ids=lambda envelope: envelope.name)
def test_integers_beyond_64_bits_stay_exact_and_writable(envelope: Envelope) -> None:
    """orjson writes no integer beyond 64 bits: nested in an attribute, one was an ``internal_error``."""
    extra = b',"big":[18446744073709551616],"low":-9223372036854775809,"max":18446744073709551615'
    outcomes = normalize_message(raw(envelope.route, envelope.one_object(envelope.members() + extra)), registry(), CTX)
    assert not any(isinstance(o, Rejection) for o in outcomes), outcomes
    if envelope.route == "cdr-push":
        (event,) = outcomes
        assert isinstance(event, dict)
        assert event["attributes"]["big"] == '["18446744073709551616"]'  # exact numbers as their digits
        assert event["attributes"]["low"] == "-9223372036854775809"
        assert event["attributes"]["max"] == "18446744073709551615"
