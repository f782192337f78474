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


def raw_message(
    ingest_id: str, body: bytes, route: str = "tencent/sms-status"
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    raw = RawCallback(
        route=route,
        ingest_id=ingest_id,
        received_at_us=1_763_700_000_000_000,
        remote_addr="10.0.0.1",
        content_type="application/json",
        body=body,
    )
    return ingest_id.encode(), body, raw.headers()


def sms(*sids: str) -> bytes:
    return orjson.dumps(
        [
            {
                "user_receive_time": "2026-11-21 08:00:00",
                "nationcode": "86",
                "mobile": "13800138000",
                "report_status": "SUCCESS",
                "errmsg": "DELIVRD",
                "description": "ok",
                "sid": s,
            }
            for s in sids
        ]
    )


async def test_events_and_dead_letters_are_published_then_offsets_committed(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(kafka_bootstrap=broker.bootstrap)
    await kafka.ensure_topics(settings)
    await produce(
        broker.bootstrap,
        settings.topic_raw,
        [
            raw_message("req-1", sms("a", "b", "c")),
            raw_message("req-2", b'{"broken'),
            raw_message("req-3", sms("d")),
            raw_message("req-4", b"{}", route="unknown/route"),
        ],
    )
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

    letters = [
        DeadLetter.from_message(r.value, r.headers)
        for r in await read_topic(broker.bootstrap, settings.topic_dlq, expected=2)
    ]
    by_ingest = {letter.raw.ingest_id: letter for letter in letters}
    assert set(by_ingest) == {"req-2", "req-4"}
    assert by_ingest["req-2"].failure_type == "invalid_json" and by_ingest["req-2"].raw.body == b'{"broken'
    raw_records = await read_topic(broker.bootstrap, settings.topic_raw, expected=4)
    (source,) = [r for r in raw_records if r.key == b"req-2"]
    assert by_ingest["req-2"].raw.topic == settings.topic_raw
    assert (by_ingest["req-2"].raw.partition, by_ingest["req-2"].raw.offset) == (source.partition, source.offset)
    assert by_ingest["req-2"].normalizer_version
    assert by_ingest["req-4"].failure_type == "unknown_route"

    assert await committed_offsets(broker.bootstrap, settings.normalizer_group, settings.topic_raw) == next_offsets(
        raw_records
    )


async def test_events_of_one_message_share_a_partition(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(kafka_bootstrap=broker.bootstrap, kafka_partitions=4)
    await kafka.ensure_topics(settings)
    body = orjson.dumps(
        [
            {
                "user_receive_time": "2026-11-21 08:00:00",
                "nationcode": "86",
                "mobile": "13800138000",
                "report_status": status,
                "errmsg": code,
                "description": "",
                "sid": "same-sid",
            }
            for status, code in (("FAIL", "ENROUTE"), ("SUCCESS", "DELIVRD"))
        ]
    )
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
    codec = EventCodec.from_dir(settings.schemas_dir)
    in_partition_order = [codec.decode(r.value)["vendor_code"] for r in sorted(records, key=lambda r: r.offset)]
    assert in_partition_order == ["ENROUTE", "DELIVRD"]  # the message's order, which consumers read


async def test_shutdown_drains_what_is_already_queued(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
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


async def poll_until(worker: Normalizer, done: Callable[[], bool], polls: int = 200) -> None:
    for _ in range(polls):
        await worker.process_poll()
        if done():
            return


async def test_a_dead_letter_surge_pauses_the_worker_before_it_publishes_or_commits(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        kafka_bootstrap=broker.bootstrap,
        dlq_guard_ratio=0.5,
        dlq_guard_min_requests=10,
        dlq_guard_min_distinct=5,
        dlq_guard_window=100,
        dlq_guard_pause_s=600,
    )
    await kafka.ensure_topics(settings)
    await produce(
        broker.bootstrap, settings.topic_raw, [raw_message(f"bad-{i}", b"{not json %d" % i) for i in range(30)]
    )
    worker = Normalizer(settings)
    await worker.start()
    try:
        await poll_until(worker, lambda: worker.guard.tripped)
        assert worker.guard.tripped  # paused, not exited: no restart loop
        assert worker.ready_reasons() and "dead-letter guard tripped" in worker.ready_reasons()[0]
        for _ in range(5):
            assert await worker.process_poll() == 0  # stays paused, takes nothing
    finally:
        await worker.stop()
    assert await read_topic(broker.bootstrap, settings.topic_dlq, expected=1, timeout_s=3) == []
    assert set((await committed_offsets(broker.bootstrap, settings.normalizer_group, settings.topic_raw)).values()) == {
        0
    }


async def test_after_the_pause_the_held_requests_are_dead_lettered_and_work_goes_on(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        kafka_bootstrap=broker.bootstrap,
        dlq_guard_min_requests=10,
        dlq_guard_min_distinct=5,
        dlq_guard_pause_s=1.0,
        kafka_partitions=1,
    )
    await kafka.ensure_topics(settings)
    await produce(
        broker.bootstrap, settings.topic_raw, [raw_message(f"bad-{i}", b"{not json %d" % i) for i in range(30)]
    )
    await produce(broker.bootstrap, settings.topic_raw, [raw_message("good", sms("after-the-surge"))])
    worker = Normalizer(settings)
    await worker.start()
    try:
        await poll_until(worker, lambda: worker.guard.tripped)
        assert worker.guard.tripped
        await asyncio.sleep(1.1)
        handled = 0

        def all_handled() -> bool:
            return handled >= 31

        for _ in range(200):
            handled += await worker.process_poll()
            if all_handled():
                break
        assert not worker.guard.tripped and not worker.ready_reasons()
    finally:
        await worker.stop()
    assert len(await read_topic(broker.bootstrap, settings.topic_dlq, expected=30)) == 30
    codec = EventCodec.from_dir(settings.schemas_dir)
    (event,) = [
        codec.decode(r.value) for r in await read_topic(broker.bootstrap, settings.topic_normalized, expected=1)
    ]
    assert event["sid"] == "after-the-surge"


async def test_one_request_of_many_bad_reports_is_one_bounded_dead_letter_and_trips_nothing(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    """A 2 KB array of 1,000 unreadable reports once halted ingestion and put 1,000 copies of its body on
    the dead-letter topic; now it is one dead letter with its body once, and the guard counts one request."""
    settings = make_settings(kafka_bootstrap=broker.bootstrap, dlq_guard_min_requests=1, dlq_guard_min_distinct=1)
    await kafka.ensure_topics(settings)
    body = orjson.dumps([1] * 3000)  # 3,000 reports, none an object
    await produce(
        broker.bootstrap, settings.topic_raw, [raw_message("many-bad", body), raw_message("fine", sms("ok-1"))]
    )
    worker = Normalizer(settings)
    await worker.start()
    try:
        handled = 0
        for _ in range(100):
            handled += await worker.process_poll()
            if handled >= 2:
                break
        assert not worker.guard.tripped
    finally:
        await worker.stop()
    records = await read_topic(broker.bootstrap, settings.topic_dlq, expected=2, timeout_s=2)
    assert len(records) == 1
    (record,) = records
    assert record.value == body
    header_bytes = sum(len(value) for _, value in record.headers)
    assert header_bytes < 64 * 1024
    letter = DeadLetter.from_message(record.value, record.headers)
    assert letter.failed_reports == 3000 and letter.report_count == 3000
    assert len(letter.failures) == 100 and letter.failure_counts == {"unexpected_shape": 3000}
    assert [f.report_index for f in letter.failures[:3]] == [0, 1, 2]
