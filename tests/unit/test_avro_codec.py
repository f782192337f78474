"""Avro single-object encoding, and schema evolution by adding an optional field."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ringback.runtime.avro import SINGLE_OBJECT_MAGIC, AvroDecodeError, EventCodec, schema_fingerprint
from tests.conftest import REPO_ROOT

SCHEMAS = REPO_ROOT / "schemas"


def sample_event(codec: EventCodec) -> dict:
    event = codec.blank_event()
    event.update(
        event_id="e1",
        event_type="sms.delivery_report",
        source="tencent.sms_status",
        route="tencent/sms-status",
        ingest_id="i1",
        received_at=datetime(2026, 11, 21, 1, 2, 3, 456789, tzinfo=UTC),
        status="delivered",
        charge=Decimal("2.940000"),
        currency="CNY",
        attributes={"nationcode": "86"},
        normalizer_version="0.1.0",
    )
    return event


def test_round_trip_keeps_every_value_exactly() -> None:
    codec = EventCodec.from_dir(SCHEMAS)
    event = sample_event(codec)
    payload = codec.encode(event)
    assert payload[:2] == SINGLE_OBJECT_MAGIC
    assert payload[2:10] == schema_fingerprint(codec.schema)
    decoded = codec.decode(payload)
    assert decoded == event
    assert isinstance(decoded["charge"], Decimal)


def test_billing_job_can_decode_with_fastavro_and_the_schema_file_alone() -> None:
    import io

    import fastavro

    codec = EventCodec.from_dir(SCHEMAS)
    payload = codec.encode(sample_event(codec))
    schema = fastavro.parse_schema(json.loads((SCHEMAS / "normalized_event.avsc").read_text()))
    record = fastavro.schemaless_reader(io.BytesIO(payload[10:]), schema, None)
    assert record["event_id"] == "e1"


@pytest.mark.parametrize("payload", [b"", b"{}", SINGLE_OBJECT_MAGIC + b"\x00" * 8 + b"x"])
def test_foreign_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(AvroDecodeError):
        EventCodec.from_dir(SCHEMAS).decode(payload)


def evolved_schemas(tmp_path: Path) -> Path:
    """schemas/ after a backward-compatible step: the old schema kept as history, one optional field added."""
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, target)
    current = json.loads((SCHEMAS / "normalized_event.avsc").read_text())
    (target / "history").mkdir(exist_ok=True)
    (target / "history" / "normalized_event.v1-0.avsc").write_text(json.dumps(current))
    current["fields"].append({"name": "roaming_partner", "type": ["null", "string"], "default": None})
    (target / "normalized_event.avsc").write_text(json.dumps(current))
    return target


def test_new_reader_reads_old_data_with_the_default(tmp_path: Path) -> None:
    old = EventCodec.from_dir(SCHEMAS)
    new = EventCodec.from_dir(evolved_schemas(tmp_path))
    decoded = new.decode(old.encode(sample_event(old)))
    assert decoded["roaming_partner"] is None
    assert decoded["event_id"] == "e1"


def test_old_reader_reads_new_data_ignoring_the_new_field(tmp_path: Path) -> None:
    import io

    import fastavro

    new = EventCodec.from_dir(evolved_schemas(tmp_path))
    event = {**sample_event(new), "roaming_partner": "HKG"}
    payload = new.encode(event)
    # An old billing job: it knows the new writer schema by fingerprint and reads with its own schema.
    old_reader = EventCodec.from_dir(SCHEMAS).schema
    record = fastavro.schemaless_reader(io.BytesIO(payload[10:]), new.schema, old_reader)
    assert "roaming_partner" not in record and record["event_id"] == "e1"


def test_container_of_untouched_bodies_reads_back_as_the_events() -> None:
    """The sink's fast path: single-object bodies wrapped, not decoded, into an Object Container File
    that an independent reader (fastavro's) reads back exactly."""
    import io

    import fastavro

    from ringback.runtime.avro import HEADER_LENGTH
    from ringback.runtime.avro_container import container

    codec = EventCodec.from_dir(SCHEMAS)
    events = [{**sample_event(codec), "event_id": f"e{i}", "attributes": {"k": "v" * i}} for i in range(300)]
    data = container(codec.writer_json[codec.header[2:]], (codec.encode(e)[HEADER_LENGTH:] for e in events))
    assert list(fastavro.reader(io.BytesIO(data))) == events


@pytest.mark.parametrize("route", ["tencent/sms-status", "", "路由/" + "x" * 200])
def test_ledger_fields_read_from_the_front_match_a_full_decode(route: str) -> None:
    codec = EventCodec.from_dir(SCHEMAS)
    event = {**sample_event(codec), "route": route, "event_id": "e" * 70, "report_index": -3}
    payload = codec.encode(event)
    assert codec.route_and_received_at(payload) == (route, 1_795_222_923_456_789)
    decoded = codec.decode(payload)
    assert int(decoded["received_at"].timestamp() * 1_000_000) == 1_795_222_923_456_789


def test_ledger_fields_of_a_cut_record_are_refused() -> None:
    codec = EventCodec.from_dir(SCHEMAS)
    payload = codec.encode(sample_event(codec))
    for end in range(10, 70):
        with pytest.raises(AvroDecodeError):
            codec.route_and_received_at(payload[:end])


def test_ledger_fields_behind_a_union_are_read_by_a_full_decode() -> None:
    """A writer schema whose front fields are not plain strings and longs is decoded in full."""
    import fastavro

    raw = json.loads((SCHEMAS / "normalized_event.avsc").read_text())
    raw["fields"].insert(0, {"name": "shard_hint", "type": ["null", "string"], "default": None})
    writer = EventCodec(schema=fastavro.parse_schema(raw))
    reader = EventCodec(schema=EventCodec.from_dir(SCHEMAS).schema, known_writers=dict(writer.known_writers))
    payload = writer.encode({**sample_event(writer), "shard_hint": "a"})
    assert reader.route_and_received_at(payload) == ("tencent/sms-status", 1_795_222_923_456_789)


def test_the_typed_event_is_the_schema() -> None:
    """ringback/normalized_event.py is generated from the schema; regenerate it when the schema changes."""
    import json

    from ringback.tools import event_typing

    schema = json.loads(event_typing.SCHEMA.read_text(encoding="utf-8"))
    assert event_typing.GENERATED.read_text(encoding="utf-8") == event_typing.render(schema), (
        "run: python -m ringback.tools.event_typing"
    )


def test_a_misspelt_field_fails_instead_of_vanishing() -> None:
    codec = EventCodec.from_dir(SCHEMAS)
    event = {**sample_event(codec), "calee_e164": "+8613800138000"}
    with pytest.raises(ValueError, match="calee_e164"):
        codec.encode(event)


def test_every_schema_version_reads_every_other() -> None:
    """Readers first, then writers: a reader on the newest schema reads what every earlier version wrote
    (new fields take their defaults), and a reader still on an earlier version reads what the newest
    writes (new fields are skipped)."""
    import fastavro

    newest = EventCodec.from_dir(SCHEMAS)
    history = sorted((SCHEMAS / "history").glob("normalized_event.v*.avsc"))
    assert len(history) >= 2
    headers = {newest.header[2:]}
    for path in history:
        old = EventCodec(
            schema=fastavro.parse_schema(json.loads(path.read_text())), known_writers=dict(newest.known_writers)
        )
        headers.add(old.header[2:])
        old_fields = {field["name"] for field in old.schema["fields"]}
        old_event = sample_event(old)
        read_by_newest = newest.decode(old.encode(old_event))
        assert read_by_newest["event_id"] == old_event["event_id"], path.name
        for field in newest.schema["fields"]:
            if field["name"] not in old_fields:
                assert read_by_newest[field["name"]] == field["default"], (path.name, field["name"])
        new_event = {**sample_event(newest), "tenant": "acme", "message_text": "hi", "carrier": "China Mobile"}
        read_by_old = old.decode(newest.encode(new_event))
        assert set(read_by_old) == old_fields, path.name
        assert read_by_old["event_id"] == new_event["event_id"]
    assert set(newest.known_writers) == headers  # every version is known by its fingerprint
