"""Normalizer and sink throughput, in this process, against the real broker and the embedded engine.

- normalizer: events/s for the realistic vendor mix, versus a pass-through consumer→producer that
  moves the same raw messages without reading them;
- sink: rows/s into the embedded ClickHouse, versus a direct columnar clickhouse-connect insert of
  the same rows.
Timing starts at the first record received, so consumer-group joins are not counted.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ringback import metrics
from ringback.config import Settings
from ringback.normalizer.adapters import registry
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Event, Rejection
from ringback.normalizer.step import normalize_message
from ringback.normalizer.worker import Normalizer
from ringback.runtime import kafka
from ringback.runtime.avro import EventCodec
from ringback.runtime.batched_sends import BatchedSends
from ringback.runtime.raw import RawCallback, new_ingest_id
from ringback.sink.store import EVENTS_INSERT_SETTINGS, EVENTS_TABLE
from ringback.sink.worker import Sink
from ringback.tools.bench import breakdown
from ringback.tools.loadgen import TrafficMaker

PRODUCE_WINDOW = 5000
STALL_S = 20.0  # no progress for this long ends a stage with what it has (the report shows how much)


async def timed_polls(poll: Callable[[], Awaitable[int]], target: int) -> tuple[int, float]:
    """Call ``poll`` (returning records handled) until ``target`` or a stall: (handled, seconds since the
    start of the first poll that returned anything, so consumer-group joins are not timed)."""
    handled, started, last_progress = 0, 0.0, time.monotonic()
    while handled < target and time.monotonic() - last_progress <= STALL_S:
        before = time.perf_counter()
        count = await poll()
        if count:
            started = started or before
            last_progress = time.monotonic()
        handled += count
    return handled, time.perf_counter() - started


def normalized_events(raws: list[RawCallback], codec: EventCodec) -> list[Event]:
    ctx = Context(blank_event=codec.blank_event())
    return [o for raw in raws for o in normalize_message(raw, registry(), ctx) if not isinstance(o, Rejection)]


def raw_callbacks(count: int, tag: str) -> list[RawCallback]:
    maker = TrafficMaker(tag, dict(_mix()), seed=11)
    now_us = time.time_ns() // 1000
    return [
        RawCallback(g.route, new_ingest_id(), now_us, "127.0.0.1", "application/json", g.body)
        for g in (maker.next() for _ in range(count))
    ]


def _mix() -> dict[str, int]:
    from ringback.tools.loadgen import DEFAULT_MIX

    return DEFAULT_MIX


async def produce_all(
    settings: Settings, topic: str, messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]] | None]]
) -> None:
    producer = kafka.producer(settings, linger_ms=5)
    await producer.start()
    try:
        for start in range(0, len(messages), PRODUCE_WINDOW):
            futures = [
                await producer.send(topic, value=v, key=k, headers=h)
                for k, v, h in messages[start : start + PRODUCE_WINDOW]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def passthrough(settings: Settings, total: int) -> float:
    """Seconds for a consumer→producer that forwards ``total`` raw messages untouched, committing per poll."""
    consumer = kafka.KafkaConsumer(settings, [settings.topic_raw], settings.normalizer_group + "-passthrough")
    producer = kafka.producer(settings)
    await consumer.start()
    await producer.start()

    async def forward_one_poll() -> int:
        # The same consuming and publishing paths as the normalizer's, so only the work differs.
        messages = await consumer.poll(200, settings.normalizer_max_records)
        sends = BatchedSends(producer)
        for m in messages:
            await sends.add(settings.topic_normalized + ".passthrough", m.value, key=m.key, headers=list(m.headers))
        await asyncio.gather(*(delivery.future for delivery in await sends.flush()))
        if messages:
            await consumer.commit({m.partition: m.next_offset for m in messages})
        return len(messages)

    try:
        return (await timed_polls(forward_one_poll, total))[1]
    finally:
        await consumer.stop()
        await producer.stop()


async def bench_normalizer(settings: Settings, messages: int) -> dict[str, Any]:
    await kafka.ensure_topics(settings)
    raws = raw_callbacks(messages, "bn")
    events = len(normalized_events(raws, EventCodec.from_dir(settings.schemas_dir)))
    await produce_all(settings, settings.topic_raw, [(raw.ingest_id.encode(), raw.body, raw.headers()) for raw in raws])

    baseline_s = await passthrough(settings, messages)
    worker = Normalizer(settings)
    await worker.start()
    try:
        handled, normalizer_s = await timed_polls(worker.process_poll, messages)
    finally:
        await worker.stop()
    return {
        "messages": messages,
        "events": events,
        "handled": handled,
        "passthrough_msgs_per_s": round(messages / baseline_s),
        "normalizer_msgs_per_s": round(messages / normalizer_s),
        "normalizer_eps": round(events / normalizer_s),
        "normalizer_ratio": round(baseline_s / normalizer_s, 3),
        "breakdown": breakdown.normalizer(
            raws, EventCodec.from_dir(settings.schemas_dir), normalizer_s / max(1, handled) * 1e6
        ),
    }


def _insert_seconds(table: str) -> float:
    for metric in metrics.SINK_INSERT_SECONDS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum") and sample.labels.get("table") == table:
                return float(sample.value)
    return 0.0


async def bench_sink(settings: Settings, rows: int) -> dict[str, Any]:
    await kafka.ensure_topics(settings)
    codec = EventCodec.from_dir(settings.schemas_dir)
    events = normalized_events(raw_callbacks(rows, "bs"), codec)[:rows]  # each callback gives at least one event
    payloads = [codec.encode(e) for e in events]
    await produce_all(settings, settings.topic_normalized, [(None, payload, None) for payload in payloads])

    sink = Sink(settings)
    await sink.start()
    client = sink.client
    assert client is not None  # started
    insert_s_before = _insert_seconds(EVENTS_TABLE)
    try:
        taken, polling_s = await timed_polls(sink.step, rows)
        flush_started = time.perf_counter()
        await sink.flush()  # the last partial batch belongs to the measurement too
        sink_s = polling_s + time.perf_counter() - flush_started
        insert_s = _insert_seconds(EVENTS_TABLE) - insert_s_before

        columns = [[e.get(name) for e in events] for name in codec.field_names]
        await sink.on_db_thread(client.command, f"CREATE TABLE IF NOT EXISTS ringback.bench_direct AS {EVENTS_TABLE}")
        await sink.on_db_thread(client.command, "TRUNCATE TABLE ringback.bench_direct")

        def insert_direct(chunk: list[list[Any]]) -> None:
            client.insert(
                "ringback.bench_direct",
                chunk,
                column_names=codec.field_names,
                column_oriented=True,
                settings=EVENTS_INSERT_SETTINGS,
            )

        began = time.perf_counter()
        for start in range(0, rows, settings.sink_batch_rows):
            await sink.on_db_thread(
                insert_direct, [column[start : start + settings.sink_batch_rows] for column in columns]
            )
        direct_s = time.perf_counter() - began
        counted = await sink.on_db_thread(lambda: client.query(f"SELECT count() FROM {EVENTS_TABLE}").result_rows)
        stored = counted[0][0]
    finally:
        await sink.stop()
    return {
        "rows": rows,
        "taken": taken,
        "stored": stored,
        "sink_rps": round(taken / sink_s),
        "direct_insert_rps": round(rows / direct_s),
        "sink_ratio": round(direct_s / sink_s, 3),
        "breakdown": breakdown.sink(payloads, codec, insert_s, sink_s / max(1, taken) * 1e6),
        "bench_process_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
