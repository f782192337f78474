"""The compiled encoder, in both its forms, writes exactly the bytes fastavro writes, and leaves every
unusual record to it."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringback import compiled
from ringback.runtime.avro import HEADER_LENGTH, EventCodec
from ringback.runtime.avro_encoder import FORMS, compile_record_encoder
from tests.conftest import REPO_ROOT

CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")
ENCODERS = {form: compile_record_encoder(CODEC.schema, form=form) for form in FORMS}
FIELDS = {f["name"]: f["type"] for f in CODEC.schema["fields"]}

text = st.text(max_size=1200)
# hypothesis takes naive bounds and adds the zone itself
times = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))  # noqa: DTZ001


def value_for(field_type: object) -> st.SearchStrategy:
    nullable = isinstance(field_type, list)
    inner = field_type[1] if nullable else field_type
    kind = inner["type"] if isinstance(inner, dict) else inner
    logical = inner.get("logicalType") if isinstance(inner, dict) else None
    if logical == "timestamp-micros":
        base = times | st.integers(min_value=0, max_value=2**62)
    elif logical == "decimal":
        base = st.decimals(
            min_value=Decimal("-999999999999"),
            max_value=Decimal("999999999999"),
            places=6,
            allow_nan=False,
            allow_infinity=False,
        )
    elif kind == "int":
        base = st.integers(min_value=-(2**31), max_value=2**31 - 1)
    elif kind == "long":
        base = st.integers(min_value=-(2**63), max_value=2**63 - 1)
    elif kind == "map":
        base = st.dictionaries(text, text, max_size=5)
    elif kind == "array":
        base = st.lists(text, max_size=5)
    else:
        base = text
    return st.none() | base if nullable else base


events = st.fixed_dictionaries({name: value_for(field_type) for name, field_type in FIELDS.items()})


def fastavro_body(event: dict) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, CODEC.schema, event)
    return buffer.getvalue()


@pytest.mark.parametrize("form", FORMS)
@settings(max_examples=300, deadline=None)
@given(events)
def test_same_bytes_as_fastavro(form: str, event: dict) -> None:
    encode = ENCODERS[form]
    assert encode is not None
    assert encode(event) == fastavro_body(event)
    assert CODEC.encode(event) == CODEC.header + fastavro_body(event)  # the header, joined in by the encoder


@settings(max_examples=100, deadline=None)
@given(
    st.decimals(
        min_value=Decimal("-999999999999"), max_value=Decimal("999999999999"), allow_nan=False, allow_infinity=False
    ).filter(lambda d: d.as_tuple().exponent >= -6)
)
def test_charges_of_any_scale_up_to_the_schema_s_encode_as_fastavro_does(charge: Decimal) -> None:
    event = {
        **CODEC.blank_event(),
        "event_id": "e",
        "event_type": "t",
        "source": "s",
        "route": "r",
        "ingest_id": "i",
        "received_at": datetime(2026, 1, 1, tzinfo=UTC),
        "status": "x",
        "normalizer_version": "v",
        "charge": charge,
    }
    assert CODEC.encode(event)[HEADER_LENGTH:] == fastavro_body(event)


def base_event() -> dict:
    return {
        **CODEC.blank_event(),
        "event_id": "e",
        "event_type": "t",
        "source": "s",
        "route": "r",
        "ingest_id": "i",
        "received_at": datetime(2026, 1, 1, tzinfo=UTC),
        "status": "x",
        "normalizer_version": "v",
    }


@pytest.mark.parametrize(
    "change",
    [
        {"duration_s": True},
        {"duration_s": 3.0},
        {"report_index": 2**40},
        {"received_at": datetime(2026, 1, 1)},  # noqa: DTZ001 - a naive time is refused
        {"charge": Decimal("1.0000001")},
        {"charge": Decimal("NaN")},
        {"attributes": {"k": 1}},
        {"repairs": ("a",)},
        {"to_number": b"138"},
        {"received_at": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=8)))},
    ],
)
@pytest.mark.parametrize("form", FORMS)
def test_unusual_values_are_left_to_fastavro(form: str, change: dict) -> None:
    """Anything but the plain case goes to fastavro, which encodes it the same way or refuses it."""
    encode = ENCODERS[form]
    assert encode is not None
    event = {**base_event(), **change}
    if type(change.get("received_at")) is datetime and change["received_at"].tzinfo is not None:
        assert encode(event) == fastavro_body(event)  # an aware non-UTC time is plain too
        return
    assert encode(event) is None
    try:
        expected = fastavro_body(event)
    except (ValueError, TypeError, OverflowError) as exc:
        with pytest.raises(type(exc)):
            CODEC.encode(event)
    else:
        assert CODEC.encode(event)[HEADER_LENGTH:] == expected


@pytest.mark.parametrize("form", FORMS)
def test_a_missing_field_is_left_to_fastavro(form: str) -> None:
    event = base_event()
    del event["app_id"]
    encode = ENCODERS[form]
    assert encode is not None and encode(event) is None
    assert CODEC.encode(event)[HEADER_LENGTH:] == fastavro_body(event)


@pytest.mark.parametrize("form", FORMS)
def test_schemas_with_other_types_are_not_compiled(form: str) -> None:
    double = {"type": "record", "name": "R", "fields": [{"name": "f", "type": "double"}]}
    null_second = {"type": "record", "name": "R", "fields": [{"name": "f", "type": ["string", "null"]}]}
    assert compile_record_encoder(double, form=form) is None
    assert compile_record_encoder(null_second, form=form) is None


def test_the_codec_takes_the_faster_form_for_how_the_module_runs() -> None:
    """Compiled, the plan's loop is native code (2x the generated source); interpreted, the source."""
    expected = "plan" if compiled.loaded_compiled("ringback.runtime.avro_encoder") else "source"
    encode = compile_record_encoder(CODEC.schema)
    assert encode is not None
    assert (hasattr(encode, "source")) == (expected == "source")
