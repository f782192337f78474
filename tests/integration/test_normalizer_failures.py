"""The normalizer worker when things go wrong, against the real broker: an adapter with a bug, a publish
the broker does not take, and the bound on a poll."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import orjson
import pytest

from ringback import metrics
from ringback.config import Settings
from ringback.normalizer.adapters import Adapter
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Outcome
from ringback.normalizer.worker import Normalizer
from ringback.runtime import kafka
from ringback.runtime.avro import EventCodec
from ringback.runtime.broker import EmbeddedBroker
from ringback.runtime.dead_letter import MAX_MESSAGE_CHARS, DeadLetter
from ringback.runtime.raw import RawCallback
from tests.kafka_helpers import committed_offsets, next_offsets, produce, read_topic

pytestmark = pytest.mark.integration
ROUTE = "tencent/sms-status"
#: A body the adapter below raises on, with a message far over the bound on a failure's message.
EXPLODES = b"explodes"
LONG_ERROR = "x" * (3 * MAX_MESSAGE_CHARS)


def raw_message(ingest_id: str, body: bytes) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    raw = RawCallback(
        route=ROUTE,
        ingest_id=ingest_id,
        received_at_us=1_763_700_000_000_000,
        remote_addr="10.0.0.1",
        content_type="application/json",
        body=body,
    )
    return ingest_id.encode(), body, raw.headers()


def sms(sid: str) -> bytes:
    return orjson.dumps(
        [
            {
                "user_receive_time": "2026-11-21 08:00:00",
                "nationcode": "86",
                "mobile": "13800138000",
                "report_status": "SUCCESS",
                "errmsg": "DELIVRD",
                "description": "ok",
                "sid": sid,
            }
        ]
    )


def with_a_bug(adapter: Adapter) -> Adapter:
    """The real adapter, except that it raises (as a bug would) on one body."""

    def normalize(raw: RawCallback, ctx: Context) -> list[Outcome]:
        if raw.body == EXPLODES:
            raise RuntimeError(LONG_ERROR)
        return adapter.normalize(raw, ctx)

    return dataclasses.replace(adapter, normalize=normalize)


async def poll_until(worker: Normalizer, handled: int, polls: int = 100) -> int:
    taken = 0
    for _ in range(polls):
        taken += await worker.process_poll()
        if taken >= handled:
            break
    return taken


async def test_an_adapter_that_raises_dead_letters_that_input_and_the_partition_goes_on(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(kafka_bootstrap=broker.bootstrap, kafka_partitions=1)
    await kafka.ensure_topics(settings)
    await produce(
        broker.bootstrap,
        settings.topic_raw,
        [raw_message("before", sms("s-before")), raw_message("bug", EXPLODES), raw_message("after", sms("s-after"))],
    )
    worker = Normalizer(settings)
    await worker.start()
    try:
        assert worker.step is not None
        worker.step.adapters = {**worker.step.adapters, ROUTE: with_a_bug(worker.step.adapters[ROUTE])}
        assert await poll_until(worker, 3) == 3
    finally:
        await worker.stop()

    codec = EventCodec.from_dir(settings.schemas_dir)
    events = [codec.decode(r.value) for r in await read_topic(broker.bootstrap, settings.topic_normalized, expected=2)]
    assert sorted(e["sid"] for e in events) == ["s-after", "s-before"]  # the one after the bug too
    (record,) = await read_topic(broker.bootstrap, settings.topic_dlq, expected=1)
    letter = DeadLetter.from_message(record.value, record.headers)
    assert (letter.raw.ingest_id, letter.failure_type, letter.raw.body) == ("bug", "internal_error", EXPLODES)
    # "RuntimeError: xxx…": the message is cut at its bound, and says so.
    assert len(letter.failure_message) == MAX_MESSAGE_CHARS and letter.failure_message.endswith("…")
    assert letter.failure_message.startswith("RuntimeError: xxx")
    raw_records = await read_topic(broker.bootstrap, settings.topic_raw, expected=3)
    assert await committed_offsets(broker.bootstrap, settings.normalizer_group, settings.topic_raw) == next_offsets(
        raw_records
    )


async def test_a_publish_the_broker_does_not_take_rewinds_the_poll(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    """The poll's events cannot be published (the broker its producer knows has gone away): nothing is
    committed, the alarm is raised once it lasts past retry_alarm_after_s, and the next round after the
    failure reads the same raw messages again rather than going past them; once they are published the
    alarm clears."""
    settings = make_settings(kafka_bootstrap=broker.bootstrap, kafka_partitions=1, retry_alarm_after_s=0.5)
    await kafka.ensure_topics(settings)
    await produce(broker.bootstrap, settings.topic_raw, [raw_message(f"req-{i}", sms(f"s-{i}")) for i in range(3)])
    worker = Normalizer(settings)
    await worker.start()
    with EmbeddedBroker() as gone:  # a producer connected to a broker that then stops answering
        refusing = kafka.producer(settings.replace(kafka_bootstrap=gone.bootstrap))
        await refusing.start()
    try:
        assert worker.step is not None
        working, worker.step.producer = worker.step.producer, refusing
        for _ in range(50):  # until the publish has failed for longer than retry_alarm_after_s
            assert await worker.process_poll() == 0
            if worker.ready_reasons():
                break
        (reason,) = worker.ready_reasons()
        assert reason.startswith("cannot publish for"), reason
        assert metrics.ALARM.labels("normalizer", "publish")._value.get() == 1
        assert await committed_offsets(broker.bootstrap, settings.normalizer_group, settings.topic_raw) == {0: 0}
        worker.step.producer = working
        assert await poll_until(worker, 3) == 3  # the same three, read again
        assert worker.ready_reasons() == []  # published at last: the alarm clears
        assert metrics.ALARM.labels("normalizer", "publish")._value.get() == 0
    finally:
        await refusing.stop()
        await worker.stop()
    codec = EventCodec.from_dir(settings.schemas_dir)
    events = [codec.decode(r.value) for r in await read_topic(broker.bootstrap, settings.topic_normalized, expected=3)]
    assert sorted(e["sid"] for e in events) == ["s-0", "s-1", "s-2"]
    assert await committed_offsets(broker.bootstrap, settings.normalizer_group, settings.topic_raw) == {0: 3}


async def test_a_poll_takes_at_most_normalizer_max_records(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(kafka_bootstrap=broker.bootstrap, kafka_partitions=1, normalizer_max_records=4)
    await kafka.ensure_topics(settings)
    await produce(broker.bootstrap, settings.topic_raw, [raw_message(f"req-{i}", sms(f"s-{i}")) for i in range(10)])
    worker = Normalizer(settings)
    await worker.start()
    polls: list[int] = []
    try:
        while sum(polls) < 10 and len(polls) < 100:
            if taken := await worker.process_poll():
                polls.append(taken)
    finally:
        await worker.stop()
    assert sum(polls) == 10 and max(polls) == 4, polls  # all there at once: full polls of 4, then the rest
