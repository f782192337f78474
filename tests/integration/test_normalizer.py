"""The normalizer worker against the real broker: events and dead letters out, then the commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest

from ringback.config import Settings
from ringback.normalizer.worker import Normalizer
from ringback.runtime import kafka
from ringback.runtime.avro import EventCodec
from ringback.runtime.broker import EmbeddedBroker
from ringback.runtime.dead_letter import DeadLetter
from ringback.runtime.raw import RawCallback
from tests.kafka_helpers import committed_offsets, next_offsets, produce, read_topic

pytestmark = pytest.mark.integration


def raw_message(ingest_id: str, body: bytes, route: str = "tencent/sms-status") -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    raw = RawCallback(route=route, ingest_id=ingest_id, received_at_us=1_763_700_000_000_000, remote_addr="10.0.0.1", content_type="application/json", body=body)
    return ingest_id.encode(), body, raw.headers()


def sms(*sids: str) -> bytes:
    return orjson.dumps([{"user_receive_time": "2026-11-21 08:00:00", "nationcode": "86", "mobile": "13800138000", "report_status": "SUCCESS", "errmsg": "DELIVRD", "description": "ok", "sid": s} for s in sids])


async def test_events_and_dead_letters_are_published_then_offsets_committed(broker: EmbeddedBroker, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(kafka_bootstrap=broker.bootstrap)
    await kafka.ensure_topics(settings)
    await produce(broker.bootstrap, settings.topic_raw, [
        raw_message("req-1", sms("a", "b", "c")),
        raw_message("req-2", b'{"broken'),
        raw_message("req-3", sms("d")),
        raw_message("req-4", b"{}", route="unknown/route"),
    ])
    worker = Normalizer(settings)
    await worker.start()
    handled = 0
    try:
        for _ in range(100):
            handled += await worker.process_poll()
            if handled >= 4:
                break
    finally:
        await worker.stop()
    assert handled == 4

    codec = EventCodec.from_dir(settings.schemas_dir)
    events = [codec.decode(r.value) for r in await read_topic(broker.bootstrap, settings.topic_normalized, expected=4)]
    assert sorted(e["sid"] for e in events) == ["a", "b", "c", "d"]
    assert {e["ingest_id"] for e in events} == {"req-1", "req-3"}

    letters = [DeadLetter.from_message(r.value, r.headers) for r in await read_topic(broker.bootstrap, settings.topic_dlq, expected=2)]
    by_ingest = {letter.raw.ingest_id: letter for letter in letters}
    assert set(by_ingest) == {"req-2", "req-4"}
    assert by_ingest["req-2"].failure_type == "invalid_json" and by_ingest["req-2"].raw.body == b'{"broken'
    assert by_ingest["req-2"].raw.topic == settings.topic_raw and by_ingest["req-2"].raw.offset >= 0
    assert by_ingest["req-2"].normalizer_version
    assert by_ingest["req-4"].failure_type == "unknown_route"

    raw_records = await read_topic(broker.bootstrap, settings.topic_raw, expected=4)
    assert await committed_offsets(broker.bootstrap, settings.normalizer_group, settings.topic_raw) == next_offsets(raw_records)


async def test_events_of_one_message_share_a_partition(broker: EmbeddedBroker, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(kafka_bootstrap=broker.bootstrap, kafka_partitions=4)
    await kafka.ensure_topics(settings)
    body = orjson.dumps([
        {"user_receive_time": "2026-11-21 08:00:00", "nationcode": "86", "mobile": "13800138000", "report_status": status, "errmsg": code, "description": "", "sid": "same-sid"}
        for status, code in (("FAIL", "ENROUTE"), ("SUCCESS", "DELIVRD"))
    ])
    await produce(broker.bootstrap, settings.topic_raw, [raw_message("req-x", body)])
    worker = Normalizer(settings)
    await worker.start()
    try:
        for _ in range(50):
            if await worker.process_poll():
                break
    finally:
        await worker.stop()
    records = await read_topic(broker.bootstrap, settings.topic_normalized, expected=2)
    assert len(records) == 2 and len({r.partition for r in records}) == 1
    assert [r.offset for r in sorted(records, key=lambda r: r.offset)] == sorted(r.offset for r in records)


async def test_shutdown_drains_what_is_already_queued(broker: EmbeddedBroker, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(kafka_bootstrap=broker.bootstrap, drain_timeout_s=20)
    await kafka.ensure_topics(settings)
    await produce(broker.bootstrap, settings.topic_raw, [raw_message(f"req-{i}", sms(f"s{i}")) for i in range(50)])
    worker = Normalizer(settings)
    await worker.start()
    stop = asyncio.Event()
    stop.set()  # asked to stop before it ever polled: it must still finish what is queued
    try:
        await worker.run(stop)
    finally:
        await worker.stop()
    assert len(await read_topic(broker.bootstrap, settings.topic_normalized, expected=50)) == 50


async def test_dead_letter_surge_stops_the_worker_before_it_publishes_or_commits(broker: EmbeddedBroker, make_settings: Callable[..., Settings]) -> None:
    from ringback.normalizer.guard import DeadLetterSurge

    settings = make_settings(kafka_bootstrap=broker.bootstrap, dlq_guard_ratio=0.5, dlq_guard_min_outcomes=1, dlq_guard_window=100)
    await kafka.ensure_topics(settings)
    await produce(broker.bootstrap, settings.topic_raw, [raw_message(f"bad-{i}", b"{not json") for i in range(30)])
    worker = Normalizer(settings)
    await worker.start()
    try:
        with pytest.raises(DeadLetterSurge):
            for _ in range(100):
                await worker.process_poll()
    finally:
        await worker.stop()
    assert await read_topic(broker.bootstrap, settings.topic_dlq, expected=1, timeout_s=3) == []
    assert set((await committed_offsets(broker.bootstrap, settings.normalizer_group, settings.topic_raw)).values()) == {0}
