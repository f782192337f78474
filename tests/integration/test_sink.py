"""The sink against the real broker and the real embedded ClickHouse engine."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ringback import metrics
from ringback.config import Settings
from ringback.runtime import kafka
from ringback.runtime.avro import EventCodec
from ringback.runtime.broker import EmbeddedBroker
from ringback.runtime.dead_letter import WHOLE_REQUEST, DeadLetter, Failure
from ringback.runtime.raw import RawCallback
from ringback.sink import store as store_module
from ringback.sink.store import EVENTS_TABLE
from ringback.sink.worker import Sink
from tests.kafka_helpers import committed_offsets, next_offsets, produce, read_topic

pytestmark = pytest.mark.integration


def event(codec: EventCodec, event_id: str, ingest_id: str, charge: str | None = None) -> dict:
    e = codec.blank_event()
    e.update(
        event_id=event_id,
        event_type="sms.delivery_report",
        source="tencent.sms_status",
        route="tencent/sms-status",
        ingest_id=ingest_id,
        received_at=datetime(2026, 11, 21, 1, 0, tzinfo=UTC),
        occurred_at=datetime(2026, 11, 21, 0, 59, 59, 123456, tzinfo=UTC),
        status="delivered",
        to_number="13800138000",
        to_e164="+8613800138000",
        attributes={"nationcode": "86"},
        normalizer_version="t",
        charge=Decimal(charge) if charge else None,
        currency="CNY" if charge else None,
    )
    return e


@pytest.fixture
async def sink(broker: EmbeddedBroker, chdb_dir: Path, make_settings: Callable[..., Settings]) -> AsyncIterator[Sink]:
    settings = make_settings(kafka_bootstrap=broker.bootstrap, clickhouse_dsn=f"chdb://{chdb_dir}")
    await kafka.ensure_topics(settings)
    worker = Sink(settings)
    await worker.start()
    yield worker
    await worker.stop()


async def rows(worker: Sink, sql: str) -> list[tuple]:
    return await worker.on_db_thread(lambda: worker.client.query(sql).result_rows)


async def poll_until_taken(worker: Sink, expected: int, taken: int = 0) -> int:
    """Step the sink (at most 100 times) until ``expected`` records were taken; returns how many were."""
    for _ in range(100):
        if taken >= expected:
            break
        taken += await worker.step()
    assert taken >= expected
    return taken


async def take_only(worker: Sink, expected: int) -> None:
    """Fetch and hand to the step until ``expected`` records are in its open batch, without anything
    being flushed by age (the test decides when)."""
    assert worker.step_ is not None
    for _ in range(100):
        if worker.step_.batch.row_count >= expected:
            return
        await worker.step_.submit(await worker.consumer.poll(200, 100))
    raise AssertionError(f"only {worker.step_.batch.row_count} of {expected} records arrived")


async def poll_until_stored(worker: Sink, expected: int) -> None:
    await poll_until_taken(worker, expected)
    await worker.flush()


async def test_events_and_dead_letters_are_stored_then_committed(sink: Sink) -> None:
    settings, codec = sink.settings, sink.codec
    tag = settings.topic_raw  # unique per test
    events = [event(codec, f"{tag}-e{i}", f"{tag}-req", charge="0.06") for i in range(3)]
    await produce(settings.kafka_bootstrap, settings.topic_normalized, [(None, codec.encode(e), []) for e in events])
    raw = RawCallback(
        route="tencent/sms-status",
        ingest_id=f"{tag}-bad",
        received_at_us=1_763_700_000_000_000,
        remote_addr="10.1.1.1",
        content_type="application/json",
        body=b"[{oops",
        topic=settings.topic_raw,
        partition=1,
        offset=7,
    )
    letter = DeadLetter.of(
        raw, [Failure(WHOLE_REQUEST, "invalid_json", "body is not valid JSON", {"sid": "s-1"})], 0, "t"
    )
    await produce(settings.kafka_bootstrap, settings.topic_dlq, [(None, raw.body, letter.headers())])
    checked_before = metrics.SINK_CHECKED_BATCHES._value.get()

    await poll_until_stored(sink, expected=4)
    assert metrics.SINK_CHECKED_BATCHES._value.get() == checked_before  # the bodies went in as Avro, undecoded

    stored = await rows(
        sink,
        (
            "SELECT event_id, status, to_e164, occurred_at, charge, attributes FROM ringback.events WHERE ingest_id "
            f"= '{tag}-req' ORDER BY event_id"
        ),
    )
    assert [r[0] for r in stored] == [f"{tag}-e0", f"{tag}-e1", f"{tag}-e2"]
    first = stored[0]
    assert first[1:3] == ("delivered", "+8613800138000")
    assert first[3].replace(tzinfo=UTC) == datetime(2026, 11, 21, 0, 59, 59, 123456, tzinfo=UTC)
    assert first[4] == Decimal("0.06") and first[5] == {"nationcode": "86"}

    (dead,) = await rows(
        sink,
        (
            "SELECT route, failure_type, reason, body, source_topic, source_partition, source_offset, remote_addr, "
            "failures.failure_type, failure_counts, body_sha256, ids FROM ringback.dead_letters WHERE ingest_id = "
            f"'{tag}-bad'"
        ),
    )
    assert dead == (
        "tencent/sms-status",
        "invalid_json",
        "body is not valid JSON",
        "[{oops",
        settings.topic_raw,
        1,
        7,
        "10.1.1.1",
        ["invalid_json"],
        {"invalid_json": 1},
        letter.body_sha256,
        {"sid": ["s-1"]},
    )

    for topic in (settings.topic_normalized, settings.topic_dlq):
        records = await read_topic(settings.kafka_bootstrap, topic, expected=1)
        assert await committed_offsets(settings.kafka_bootstrap, settings.sink_group, topic) == {
            **dict.fromkeys(range(settings.kafka_partitions), 0),
            **next_offsets(records),
        }


async def test_duplicate_events_collapse_in_the_dedup_view(sink: Sink) -> None:
    settings, codec = sink.settings, sink.codec
    tag = settings.topic_raw
    once = event(codec, f"{tag}-dup", f"{tag}-r1", charge="2.94")
    resent = {**once, "ingest_id": f"{tag}-r2"}
    # Delivered in separate batches, as vendor resends are: separate inserts, separate parts.
    await produce(settings.kafka_bootstrap, settings.topic_normalized, [(None, codec.encode(once), [])])
    await poll_until_stored(sink, expected=1)
    await produce(
        settings.kafka_bootstrap,
        settings.topic_normalized,
        [(None, codec.encode(resent), []), (None, codec.encode(resent), [])],
    )
    await poll_until_stored(sink, expected=2)
    assert await rows(sink, f"SELECT count(), sum(charge) FROM ringback.events_dedup WHERE event_id = '{tag}-dup'") == [
        (1, Decimal("2.94"))
    ]


async def test_undecodable_message_is_kept_beside_the_dead_letters(sink: Sink) -> None:
    settings = sink.settings
    await produce(settings.kafka_bootstrap, settings.topic_normalized, [(None, b"not avro at all", [])])
    await poll_until_stored(sink, expected=1)
    (row,) = await rows(
        sink, f"SELECT failure_type, body FROM ringback.dead_letters WHERE source_topic = '{settings.topic_normalized}'"
    )
    assert row == ("undecodable_event", "not avro at all")


async def test_a_truncated_event_body_is_set_aside_and_its_batch_still_stored(sink: Sink) -> None:
    """A known schema header over a broken body: ClickHouse refuses the container, the checked path
    decodes each event, stores the good ones and keeps the broken one, with where it came from."""
    settings, codec = sink.settings, sink.codec
    tag = settings.topic_raw
    payloads = [codec.encode(event(codec, f"{tag}-t{i}", f"{tag}-req", charge="0.50")) for i in range(4)]
    payloads[1] = payloads[1][:30]
    await produce(settings.kafka_bootstrap, settings.topic_normalized, [(None, payload, []) for payload in payloads])
    checked_before = metrics.SINK_CHECKED_BATCHES._value.get()
    await poll_until_stored(sink, expected=4)
    assert metrics.SINK_CHECKED_BATCHES._value.get() == checked_before + 1
    assert await rows(sink, f"SELECT count(), sum(charge) FROM ringback.events WHERE ingest_id = '{tag}-req'") == [
        (3, Decimal("1.50"))
    ]
    (dead,) = await rows(
        sink,
        (
            "SELECT failure_type, source_partition, source_offset, length(body) FROM ringback.dead_letters WHERE "
            f"source_topic = '{settings.topic_normalized}'"
        ),
    )
    (truncated,) = [
        r
        for r in await read_topic(settings.kafka_bootstrap, settings.topic_normalized, expected=4)
        if len(r.value) == 30
    ]
    assert dead == ("undecodable_event", truncated.partition, truncated.offset, 30)


async def test_read_only_query_refuses_writes_and_leaves_the_sink_writable(sink: Sink) -> None:
    assert await sink.query("SELECT 1 AS one FORMAT JSONEachRow", "TabSeparated") == b'{"one":1}\n'
    with pytest.raises(Exception, match="readonly"):
        await sink.query("DROP TABLE ringback.events", "TabSeparated")
    settings, codec = sink.settings, sink.codec
    after = event(codec, f"{settings.topic_raw}-after-query", "r")
    await produce(settings.kafka_bootstrap, settings.topic_normalized, [(None, codec.encode(after), [])])
    await poll_until_stored(sink, expected=1)
    assert await rows(sink, f"SELECT count() FROM ringback.events WHERE event_id = '{after['event_id']}'") == [(1,)]


async def load_ledger(
    sink: Sink, hour: datetime, route: str, counts: dict[str, int], stored_ingest_ids: list[str]
) -> None:
    from ringback.runtime import ledger

    rows = [[hour, route, name, "test-instance", 1, n, ""] for name, n in counts.items()]
    rows.append(rows[0])  # the same delta loaded twice counts once
    await sink.on_db_thread(lambda: sink.client.insert("ringback.ledger", rows, column_names=ledger.LEDGER_COLUMNS))
    ingests = [[hour, route, ingest_id, ""] for ingest_id in stored_ingest_ids]
    await sink.on_db_thread(
        lambda: sink.client.insert("ringback.ingests", ingests, column_names=["hour", "route", "ingest_id", "tenant"])
    )


async def test_reconcile_flags_what_a_stage_lost(sink: Sink) -> None:
    from ringback.reconcile import has_closed_gap, ledger_lines, render
    from ringback.runtime import ledger

    route = f"test/{sink.settings.topic_raw}"
    closed_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    counts = {ledger.EDGE_ACCEPTED: 5, ledger.NORMALIZER_RAW: 4, ledger.NORMALIZER_EVENTS: 4, ledger.SINK_EVENTS: 4}
    await load_ledger(sink, closed_hour, route, counts, [f"req-{i}" for i in range(4)])
    lines = [line for line in await sink.on_db_thread(ledger_lines, sink.settings, 24) if line.route == route]
    assert [line.counts["accepted"] for line in lines] == [5]
    assert lines[0].gaps == [
        "1 acknowledged requests with nothing stored",
        "1 accepted by the edge but never normalized",
    ]
    assert has_closed_gap(lines) and "GAP: 1 acknowledged requests with nothing stored" in render(lines)


async def test_reconcile_sees_a_loss_that_replays_hide_in_the_counts(sink: Sink) -> None:
    """Every count downstream is at least the count upstream (a replay of other requests made up for the
    lost one); only the identities tell that one acknowledged request has nothing stored."""
    from ringback.reconcile import has_closed_gap, ledger_lines
    from ringback.runtime import ledger

    route = f"test/{sink.settings.topic_raw}-replayed"
    closed_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    counts = {ledger.EDGE_ACCEPTED: 5, ledger.NORMALIZER_RAW: 6, ledger.NORMALIZER_EVENTS: 6, ledger.SINK_EVENTS: 6}
    await load_ledger(sink, closed_hour, route, counts, ["a", "b", "c", "d", "d"])
    (line,) = [line for line in await sink.on_db_thread(ledger_lines, sink.settings, 24) if line.route == route]
    assert line.counts["stored_requests"] == 4
    assert line.gaps == ["1 acknowledged requests with nothing stored"]
    assert has_closed_gap([line])


PARTS_LIMIT = "parts_to_throw_insert"


async def make_inserts_fail(sink: Sink, tag: str) -> None:
    """A real ClickHouse failure on the real engine: with one part present and parts_to_throw_insert = 1,
    every insert into the events table fails with TOO_MANY_PARTS until ``let_inserts_succeed``."""
    await sink.on_db_thread(
        lambda: sink.client.insert(
            EVENTS_TABLE,
            [[f"{tag}-seed", "seed", "s", "r", "i", 0, datetime.now(UTC), "x", "v"]],
            column_names=[
                "event_id",
                "event_type",
                "source",
                "route",
                "ingest_id",
                "report_index",
                "received_at",
                "status",
                "normalizer_version",
            ],
        )
    )
    await sink.on_db_thread(sink.client.command, f"ALTER TABLE {EVENTS_TABLE} MODIFY SETTING parts_to_throw_insert = 1")


async def table_setting(sink: Sink, name: str) -> str | None:
    """The events table's own value of a MergeTree setting, None when the table does not set it."""
    database, table = EVENTS_TABLE.split(".")
    ((engine_full,),) = await rows(
        sink, f"SELECT engine_full FROM system.tables WHERE database = '{database}' AND name = '{table}'"
    )
    found = re.search(rf"\b{name} = (\w+)", engine_full)
    return found.group(1) if found else None


async def let_inserts_succeed(sink: Sink, before: str | None) -> None:
    """Puts the shared store's events table back as it was found: its own value, or none."""
    statement = (
        f"ALTER TABLE {EVENTS_TABLE} RESET SETTING {PARTS_LIMIT}"
        if before is None
        else f"ALTER TABLE {EVENTS_TABLE} MODIFY SETTING {PARTS_LIMIT} = {before}"
    )
    await sink.on_db_thread(sink.client.command, statement)
    assert await table_setting(sink, PARTS_LIMIT) == before  # the shared store is as it was found


async def test_insert_failures_commit_nothing_are_retried_on_the_fast_path_raise_the_alarm_and_end_exact(
    sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real ClickHouse failure (TOO_MANY_PARTS, forced with parts_to_throw_insert) on the real engine:
    an outage, not the data's fault — retried as it is, never sent down the checked path, never
    dead-lettered; past retry_alarm_after_s the sink says it is not ready, and why."""
    import asyncio

    settings, codec = sink.settings, sink.codec
    tag = settings.topic_raw
    sink.health.alarm_after_s = 1.0
    logged = LogLines(store_module.log)
    monkeypatch.setattr(store_module, "log", logged)
    await produce(
        settings.kafka_bootstrap,
        settings.topic_normalized,
        [(None, codec.encode(event(codec, f"{tag}-f{i}", f"{tag}-req", charge="1.10")), []) for i in range(5)],
    )
    parts_limit = await table_setting(sink, PARTS_LIMIT)
    await make_inserts_fail(sink, tag)
    failures_before = metrics.SINK_INSERT_FAILURES.labels(EVENTS_TABLE)._value.get()
    checked_before = metrics.SINK_CHECKED_BATCHES._value.get()
    try:
        await poll_until_taken(sink, 5)
        flushing = asyncio.create_task(sink.flush())
        while metrics.SINK_INSERT_FAILURES.labels(EVENTS_TABLE)._value.get() < failures_before + 2:
            await asyncio.sleep(0.05)
        assert not flushing.done()
        assert set(
            (await committed_offsets(settings.kafka_bootstrap, settings.sink_group, settings.topic_normalized)).values()
        ) == {0}
        deadline = asyncio.get_running_loop().time() + 10
        while not sink.ready_reasons() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        (reason,) = sink.ready_reasons()
        assert reason.startswith("cannot insert for") and "TOO_MANY_PARTS" in reason
        assert metrics.ALARM.labels("sink", "insert")._value.get() == 1
    finally:
        await let_inserts_succeed(sink, parts_limit)
    await asyncio.wait_for(flushing, 30)
    # retried with backoff: 0.2 s, then 0.5 s, … never more than 5 s apart
    delays = [fields["retry_in_s"] for event, fields in logged.lines if event == "insert failed, retrying"]
    assert delays[:2] == [0.2, 0.5] and max(delays) <= 5.0, delays
    assert not sink.ready_reasons() and metrics.ALARM.labels("sink", "insert")._value.get() == 0
    assert metrics.SINK_CHECKED_BATCHES._value.get() == checked_before  # never the checked path for an outage
    assert await rows(sink, f"SELECT count() FROM ringback.dead_letters WHERE ingest_id = '{tag}-req'") == [(0,)]
    assert await rows(
        sink, f"SELECT count(), sum(charge) FROM ringback.events_dedup WHERE ingest_id = '{tag}-req'"
    ) == [(5, Decimal("5.50"))]
    records = await read_topic(settings.kafka_bootstrap, settings.topic_normalized, expected=5)
    assert await committed_offsets(settings.kafka_bootstrap, settings.sink_group, settings.topic_normalized) == {
        **dict.fromkeys(range(settings.kafka_partitions), 0),
        **next_offsets(records),
    }


class LogLines:
    """A module's logger that also keeps what it was asked to log."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))
        self.logger.warning(event, **fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.logger, name)


def wider_charge_payload(codec: EventCodec, event_: dict) -> bytes:
    """An event as a producer with a wider decimal in its copy of the schema writes it: the
    fingerprint ignores logical-type parameters, so the header is the same and only the value differs."""
    import io
    import json

    import fastavro

    raw_schema = json.loads(codec.writer_json[codec.header[2:]])
    for f in raw_schema["fields"]:
        if f["name"] == "charge":
            f["type"][1]["precision"] = 38
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(raw_schema), event_)
    return codec.header + body.getvalue()


async def test_an_event_clickhouse_cannot_store_is_set_aside_and_the_rest_flows(sink: Sink) -> None:
    """A value the engine cannot take must not block the partition: the batch is split, the good rows
    stored, the bad one kept in dead_letters with where it came from."""
    settings, codec = sink.settings, sink.codec
    tag = settings.topic_raw
    good = [codec.encode(event(codec, f"{tag}-ok{i}", f"{tag}-req", charge="1.00")) for i in range(5)]
    poison = wider_charge_payload(codec, event(codec, f"{tag}-poison", f"{tag}-req", charge="123456789012345678901.5"))
    await produce(
        settings.kafka_bootstrap,
        settings.topic_normalized,
        [(None, payload, []) for payload in [*good[:2], poison, *good[2:]]],
    )
    await poll_until_stored(sink, 6)
    assert await rows(sink, f"SELECT count(), sum(charge) FROM ringback.events WHERE ingest_id = '{tag}-req'") == [
        (5, Decimal("5.00"))
    ]
    (dead,) = await rows(
        sink,
        (
            f"SELECT failure_type, reason, position(body, '{tag}-poison') > 0, source_partition, source_offset FROM "
            f"ringback.dead_letters WHERE ingest_id = '{tag}-req'"
        ),
    )
    records = await read_topic(settings.kafka_bootstrap, settings.topic_normalized, expected=6)
    (source,) = [r for r in records if r.value == poison]
    assert dead[0] == "unstorable_event" and "charge" in dead[1] and dead[2]
    assert dead[3:] == (source.partition, source.offset)
    assert await committed_offsets(settings.kafka_bootstrap, settings.sink_group, settings.topic_normalized) == {
        **dict.fromkeys(range(settings.kafka_partitions), 0),
        **next_offsets(records),
    }


async def test_reading_goes_on_while_a_batch_is_stored_but_commits_wait_for_its_insert(sink: Sink) -> None:
    """The batch in flight blocks only its own commit: the next batch fills meanwhile, and offsets move
    in order, each batch's only after its rows are stored."""
    import asyncio

    settings, codec = sink.settings, sink.codec
    tag = settings.topic_raw
    first = [(None, codec.encode(event(codec, f"{tag}-a{i}", f"{tag}-req", charge="1.00")), []) for i in range(5)]
    second = [(None, codec.encode(event(codec, f"{tag}-b{i}", f"{tag}-req", charge="2.00")), []) for i in range(3)]
    await produce(settings.kafka_bootstrap, settings.topic_normalized, first)
    parts_limit = await table_setting(sink, PARTS_LIMIT)
    await make_inserts_fail(sink, tag)
    failures_before = metrics.SINK_INSERT_FAILURES.labels(EVENTS_TABLE)._value.get()
    try:
        assert sink.step_ is not None
        await take_only(sink, 5)
        sink.step_.flush_nowait()
        await asyncio.sleep(0.2)
        assert sink.step_.in_flight is not None and not sink.step_.in_flight.done()
        await produce(settings.kafka_bootstrap, settings.topic_normalized, second)
        await take_only(sink, 3)
        assert sink.step_.batch.event_count == 3
        while metrics.SINK_INSERT_FAILURES.labels(EVENTS_TABLE)._value.get() < failures_before + 1:
            await asyncio.sleep(0.05)
        assert set(
            (await committed_offsets(settings.kafka_bootstrap, settings.sink_group, settings.topic_normalized)).values()
        ) == {0}
    finally:
        await let_inserts_succeed(sink, parts_limit)
    await asyncio.wait_for(sink.step_.settle(), 30)
    await sink.step()  # the driver commits what is stored
    first_records = await read_topic(
        settings.kafka_bootstrap, settings.topic_normalized, expected=5, where=lambda r: f"{tag}-a".encode() in r.value
    )
    first_offsets = next_offsets(first_records)
    committed = await committed_offsets(settings.kafka_bootstrap, settings.sink_group, settings.topic_normalized)
    assert sum(committed.values()) == 5 and committed == {
        **dict.fromkeys(range(settings.kafka_partitions), 0),
        **first_offsets,
    }
    await sink.flush()
    assert await rows(
        sink, f"SELECT count(), sum(charge) FROM ringback.events_dedup WHERE ingest_id = '{tag}-req'"
    ) == [(8, Decimal("11.00"))]
    assert (
        sum(
            (await committed_offsets(settings.kafka_bootstrap, settings.sink_group, settings.topic_normalized)).values()
        )
        == 8
    )


async def test_the_event_loop_stays_responsive_while_inserts_fail(sink: Sink) -> None:
    """A due batch waiting behind one that cannot be stored once made the driver spin without
    yielding: /readyz and analysts' queries on the same loop starved. A ticker must keep ticking."""
    import asyncio

    settings, codec = sink.settings, sink.codec
    tag = settings.topic_raw
    parts_limit = await table_setting(sink, PARTS_LIMIT)
    await make_inserts_fail(sink, tag)
    stop = asyncio.Event()
    running = asyncio.create_task(sink.run(stop))
    gaps: list[float] = []

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while not stop.is_set():
            await asyncio.sleep(0.05)
            now = loop.time()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        for batch in range(3):  # one batch in flight (failing), the next due behind it
            await produce(
                settings.kafka_bootstrap,
                settings.topic_normalized,
                [(None, codec.encode(event(codec, f"{tag}-t{batch}-{i}", f"{tag}-req")), []) for i in range(3)],
            )
            await asyncio.sleep(1.0)
        assert max(gaps) < 0.5, f"the loop was blocked for {max(gaps):.2f}s"
    finally:
        await let_inserts_succeed(sink, parts_limit)
        stop.set()
        await asyncio.wait_for(running, 60)
        await ticker
    assert await rows(sink, f"SELECT count() FROM ringback.events_dedup WHERE ingest_id = '{tag}-req'") == [(9,)]


async def test_the_first_arrival_is_kept_and_a_differing_resend_is_recorded_as_a_conflict(
    broker: EmbeddedBroker, chdb_dir: Path, make_settings: Callable[..., Settings]
) -> None:
    """A CDR resent with another charge (1.00, then 2.50) once silently replaced the first copy; now
    ringback.events keeps the first arrival and ringback.event_conflicts holds both versions."""
    settings = make_settings(
        kafka_bootstrap=broker.bootstrap, clickhouse_dsn=f"chdb://{chdb_dir}", conflict_check_interval_s=0.01
    )
    await kafka.ensure_topics(settings)
    sink = Sink(settings)
    await sink.start()
    try:
        codec, tag = sink.codec, settings.topic_raw
        first = event(codec, f"{tag}-cdr", f"{tag}-r1", charge="1.00")
        again_same = {**first, "ingest_id": f"{tag}-r2", "received_at": first["received_at"] + timedelta(minutes=1)}
        again_other = {
            **first,
            "ingest_id": f"{tag}-r3",
            "received_at": first["received_at"] + timedelta(minutes=2),
            "charge": Decimal("2.50"),
        }
        conflicts_before = metrics.SINK_EVENT_CONFLICTS._value.get()
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        for copy in (
            again_other,
            first,
            again_same,
        ):  # the later copy stored first: arrival order is received_at, not insert order
            await produce(settings.kafka_bootstrap, settings.topic_normalized, [(None, codec.encode(copy), [])])
            await poll_until_stored(sink, 1)
        assert await rows(
            sink, f"SELECT toString(charge), ingest_id FROM ringback.events WHERE event_id = '{tag}-cdr'"
        ) == [("1", f"{tag}-r1")]
        await produce(
            settings.kafka_bootstrap,
            settings.topic_normalized,
            [(None, codec.encode(event(codec, f"{tag}-other", f"{tag}-r4")), [])],
        )
        await poll_until_stored(sink, 1)  # a later batch: the watcher looks
        (conflict,) = await rows(
            sink,
            (
                "SELECT versions, arrayMap(c -> toString(c), charge), ingest_id FROM ringback.event_conflicts FINAL "
                f"WHERE event_id = '{tag}-cdr'"
            ),
        )
        assert conflict == (2, ["1", "2.5"], [f"{tag}-r1", f"{tag}-r3"])
        # Each conflict this sink found is counted once: the store is shared, so other tests' conflicts of the
        # last minute are found (and counted) too.
        ((found,),) = await rows(
            sink, f"SELECT count() FROM ringback.event_conflicts FINAL WHERE detected_at >= '{started}'"
        )
        assert found >= 1 and metrics.SINK_EVENT_CONFLICTS._value.get() == conflicts_before + found
    finally:
        await sink.stop()


@contextlib.asynccontextmanager
async def merges_stopped(sink: Sink) -> AsyncIterator[None]:
    """No background merge of ringback.event_copies meanwhile: its raw rows show every copy inserted."""
    await sink.on_db_thread(sink.client.command, "SYSTEM STOP MERGES ringback.event_copies")
    try:
        yield
    finally:
        await sink.on_db_thread(sink.client.command, "SYSTEM START MERGES ringback.event_copies")


async def test_a_retried_insert_is_not_stored_twice(sink: Sink) -> None:
    """The same batch inserted again (a retry after an answer that never came) with its offsets' token:
    ClickHouse drops it. Counted in the raw rows of ringback.event_copies, where a duplicate would show."""
    settings, codec = sink.settings, sink.codec
    tag = settings.topic_raw
    await produce(
        settings.kafka_bootstrap,
        settings.topic_normalized,
        [(None, codec.encode(event(codec, f"{tag}-r{i}", f"{tag}-req", charge="1.00")), []) for i in range(3)],
    )
    await take_only(sink, 3)
    assert sink.step_ is not None
    batch = sink.step_.batch
    token = batch.dedup_token(EVENTS_TABLE)
    copies = f"SELECT count() FROM ringback.event_copies WHERE ingest_id = '{tag}-req'"
    async with merges_stopped(sink):
        await sink.step_.store.store_events(batch.events, token)
        assert await rows(sink, copies) == [(3,)]
        await sink.step_.store.store_events(batch.events, token)  # the retry
        assert await rows(sink, copies) == [(3,)]


async def test_a_batch_holds_at_most_sink_batch_rows(
    broker: EmbeddedBroker, chdb_dir: Path, make_settings: Callable[..., Settings]
) -> None:
    """12 events with sink_batch_rows = 5: inserted as parts of 5, 5 and 2 rows, never more in one."""
    settings = make_settings(
        kafka_bootstrap=broker.bootstrap,
        clickhouse_dsn=f"chdb://{chdb_dir}",
        sink_batch_rows=5,
        sink_batch_seconds=600,  # only the row bound makes a batch due; the last one is flushed by the test
        kafka_partitions=1,
    )
    await kafka.ensure_topics(settings)
    worker = Sink(settings)
    await worker.start()
    try:
        tag = settings.topic_raw
        codec = worker.codec
        await produce(
            settings.kafka_bootstrap,
            settings.topic_normalized,
            [(None, codec.encode(event(codec, f"{tag}-b{i}", f"{tag}-req")), []) for i in range(12)],
        )
        async with merges_stopped(worker):
            await poll_until_stored(worker, 12)
            parts = await rows(
                worker,
                f"SELECT _part, count() AS n FROM ringback.event_copies WHERE ingest_id = '{tag}-req' GROUP BY _part",
            )
        assert sorted(n for _, n in parts) == [2, 5, 5], parts
    finally:
        await worker.stop()
