"""The billing consumer's pieces that need no broker: decoding across schema versions, the dedupe rule."""

from __future__ import annotations

import ast
import json
import shutil
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ringback.consumer import DedupeWindow, EventDecoder, UndecodableEvent, Verdict, billing_values, json_ready, micros
from ringback.runtime.avro import SINGLE_OBJECT_MAGIC, EventCodec, load_schema
from tests.conftest import REPO_ROOT

SCHEMAS = REPO_ROOT / "schemas"
V1 = SCHEMAS / "history" / "normalized_event.v1.avsc"
RECEIVED = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
BILL = (Decimal("1.000000"), 60, 1, "answered")


def event(codec: EventCodec, **values: Any) -> dict[str, Any]:
    base = codec.blank_event()
    base.update(
        event_id="e1",
        event_type="call.cdr",
        source="cdr_push",
        route="cdr-push",
        ingest_id="i1",
        received_at=RECEIVED,
        status="answered",
        charge=Decimal("1.500000"),
        currency="CNY",
        duration_s=60,
        normalizer_version="0.1.0",
    )
    base.update(values)
    return base


def at(minutes: float) -> int:
    return micros(RECEIVED + timedelta(minutes=minutes))


# --- the dedupe rule ---


def test_the_first_copy_wins_and_later_copies_are_duplicates_or_conflicts() -> None:
    window = DedupeWindow()
    assert window.judge("e1", at(0), BILL) is Verdict.FIRST
    assert window.judge("e1", at(5), BILL) is Verdict.DUPLICATE
    assert window.judge("e1", at(6), (Decimal("2.500000"), 60, 1, "answered")) is Verdict.CONFLICT
    assert window.judge("e2", at(6), BILL) is Verdict.FIRST


def test_an_equal_amount_written_with_another_scale_is_not_a_conflict() -> None:
    window = DedupeWindow()
    window.judge("e1", at(0), (Decimal("1.00"), 60, 1, "answered"))
    assert window.judge("e1", at(1), (Decimal("1.000000"), 60, 1, "answered")) is Verdict.DUPLICATE


def test_ids_are_forgotten_after_max_age_of_stream_time() -> None:
    window = DedupeWindow(max_age=timedelta(hours=1))
    window.judge("early", at(0), BILL)
    window.judge("later", at(30), BILL)
    assert window.judge("early", at(59), BILL) is Verdict.DUPLICATE
    window.judge("other", at(61), BILL)  # stream time passes an hour after "early" was first seen
    assert window.judge("later", at(61), BILL) is Verdict.DUPLICATE
    assert window.judge("early", at(61), BILL) is Verdict.FIRST  # forgotten: counted as a first copy again
    assert window.horizon() <= timedelta(hours=1)


def test_a_replay_with_its_old_receive_time_is_judged_by_stream_time() -> None:
    """A replay carries the original received_at; the clock does not go back, so the id is still known."""
    window = DedupeWindow(max_age=timedelta(hours=1))
    window.judge("replayed", at(0), BILL)
    window.judge("newer", at(50), BILL)
    assert window.judge("replayed", at(0), BILL) is Verdict.DUPLICATE
    assert window.clock_us == at(50)


def test_at_most_max_ids_are_remembered_oldest_forgotten_first() -> None:
    window = DedupeWindow(max_ids=3)
    for n in range(5):
        window.judge(f"e{n}", at(n), BILL)
    assert len(window) == 3 and window.forgotten_by_count == 2
    assert window.judge("e4", at(5), BILL) is Verdict.DUPLICATE
    assert window.judge("e0", at(5), BILL) is Verdict.FIRST
    assert window.horizon() == timedelta(minutes=2)  # e3 at minute 3 is the oldest remembered now


def test_memory_stays_bounded_under_a_long_stream() -> None:
    window = DedupeWindow(max_age=timedelta(minutes=10), max_ids=1000)
    for n in range(20_000):
        window.judge(f"e{n}", at(n / 100), BILL)
    assert len(window) == 1000
    assert len(window._order) == 1000 and sum(n for _, n in window._seen_at) == 1000


@pytest.mark.parametrize("max_age, max_ids", [(timedelta(0), 10), (timedelta(hours=1), 0)])
def test_an_empty_window_is_refused(max_age: timedelta, max_ids: int) -> None:
    with pytest.raises(ValueError):
        DedupeWindow(max_age=max_age, max_ids=max_ids)


def test_billing_values_are_the_fields_a_bill_depends_on() -> None:
    codec = EventCodec.from_dir(SCHEMAS)
    assert billing_values(event(codec, billable_minutes=2)) == (Decimal("1.500000"), 60, 2, "answered")


# --- decoding by fingerprint ---


def test_current_events_decode_exactly() -> None:
    codec = EventCodec.from_dir(SCHEMAS)
    original = event(codec, tenant="acme")
    assert EventDecoder(SCHEMAS).decode(codec.encode(original)) == original


def test_a_newer_reader_reads_what_the_first_schema_wrote() -> None:
    v1 = EventCodec(schema=load_schema(V1))
    old = dict(event(v1))
    decoded = EventDecoder(SCHEMAS).decode(v1.encode(old))
    assert decoded["tenant"] == "" and decoded["message_text"] is None
    assert decoded["charge"] == Decimal("1.500000") and decoded["event_id"] == "e1"


def test_an_older_reader_reads_what_the_current_schema_wrote() -> None:
    current = EventCodec.from_dir(SCHEMAS)
    decoded = EventDecoder(SCHEMAS, reader_schema=V1).decode(
        current.encode(event(current, tenant="acme", message_text="hi"))
    )
    assert "tenant" not in decoded and "message_text" not in decoded
    assert decoded["charge"] == Decimal("1.500000")


def newer_schemas(tmp_path: Path) -> Path:
    """schemas/ as a reader gets it when upgraded first: the next version's file beside its own."""
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, target)
    nxt = json.loads((SCHEMAS / "normalized_event.avsc").read_text())
    nxt["fields"].append({"name": "roaming_partner", "type": ["null", "string"], "default": None})
    (target / "history" / "normalized_event.next.avsc").write_text(json.dumps(nxt))
    return target


def test_a_job_upgraded_first_reads_a_newer_writer_with_its_own_schema(tmp_path: Path) -> None:
    schemas = newer_schemas(tmp_path)
    writer = EventCodec(schema=load_schema(schemas / "history" / "normalized_event.next.avsc"))
    payload = writer.encode({**event(writer), "roaming_partner": "HKG"})
    decoded = EventDecoder(schemas, reader_schema=SCHEMAS / "normalized_event.avsc").decode(payload)
    assert "roaming_partner" not in decoded and decoded["event_id"] == "e1"
    with pytest.raises(UndecodableEvent, match="unknown writer schema"):
        EventDecoder(SCHEMAS).decode(payload)  # a job not upgraded stops instead of skipping


@pytest.mark.parametrize("payload", [b"", b'{"event_id": "e1"}', SINGLE_OBJECT_MAGIC + b"\x00" * 8])
def test_what_is_not_an_event_is_refused(payload: bytes) -> None:
    with pytest.raises(UndecodableEvent):
        EventDecoder(SCHEMAS).decode(payload)


def test_a_known_writer_with_a_cut_body_is_refused() -> None:
    codec = EventCodec.from_dir(SCHEMAS)
    payload = codec.encode(event(codec))
    with pytest.raises(UndecodableEvent):
        EventDecoder(SCHEMAS).decode(payload[: len(payload) // 2])


def test_json_gives_money_as_exact_text_and_times_in_utc() -> None:
    codec = EventCodec.from_dir(SCHEMAS)
    shanghai = timezone(timedelta(hours=8))
    ready = json_ready(
        event(codec, charge=Decimal("0.060000"), occurred_at=datetime(2026, 11, 27, 18, 0, 1, 5, tzinfo=shanghai))
    )
    assert ready["charge"] == "0.060000"
    assert ready["occurred_at"] == "2026-11-27T10:00:01.000005Z"
    assert ready["received_at"] == "2026-11-27T10:00:00.000000Z"
    json.dumps(ready)


def test_ids_as_the_normalizer_makes_them_and_any_other_text_are_told_apart() -> None:
    window = DedupeWindow()
    hex_id = "0123456789abcdef0123456789abcdef"
    assert window.judge(hex_id, at(0), BILL) is Verdict.FIRST
    assert window.judge(hex_id, at(1), BILL) is Verdict.DUPLICATE
    assert window.judge(hex_id[:-1] + "0", at(1), BILL) is Verdict.FIRST
    assert window.judge("not-hex", at(0), BILL) is Verdict.FIRST
    assert window.judge("not-hex", at(1), BILL) is Verdict.DUPLICATE


def test_only_the_kits_kafka_module_imports_aiokafka() -> None:
    package = REPO_ROOT / "services" / "ringback" / "consumer"
    importers = set()
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "aiokafka" for name in names):
                importers.add(module.name)
    assert importers == {"kafka.py"}
