"""Looking at the stream without a consumer group (``ringback tail``, replay): every message from a start,
nothing committed, no copy set aside."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from ringback.consumer import kafka
from ringback.consumer.decoding import EventDecoder, UndecodableEvent
from ringback.consumer.delivery import DEFAULT_TOPIC, Delivered, delivered
from ringback.consumer.kafka import Consumer, Record, TopicPartition
from ringback.consumer.times import US_PER_MS, micros

#: Where ``read`` starts: the topic's beginning, its end (what comes next), or a time of publication.
Start = datetime | Literal["beginning", "end"]


async def read(
    bootstrap: str,
    start: Start = "end",
    *,
    topic: str = DEFAULT_TOPIC,
    decoder: EventDecoder | None = None,
    follow: bool = True,
    on_undecodable: Callable[[Record, UndecodableEvent], None] | None = None,
    kafka_options: Mapping[str, Any] | None = None,
) -> AsyncGenerator[Delivered, None]:
    """Every message of ``topic`` from ``start``, without a consumer group: nothing is committed and no
    copy is set aside — for looking at the stream (``ringback tail``), not for billing. Without
    ``follow`` it ends where the topic ended when each partition was first fetched. A message that does
    not decode goes to ``on_undecodable`` (raised when there is none)."""
    decoder = decoder or EventDecoder()
    records = read_records(bootstrap, start, topic=topic, follow=follow, kafka_options=kafka_options)
    try:
        async for record in records:
            try:
                event = decoder.decode(record.value or b"")
            except UndecodableEvent as exc:
                if on_undecodable is None:
                    raise
                on_undecodable(record, exc)
                continue
            yield delivered(record, event)
    finally:
        await records.aclose()


async def read_records(
    bootstrap: str,
    start: Start = "end",
    *,
    topic: str = DEFAULT_TOPIC,
    follow: bool = True,
    kafka_options: Mapping[str, Any] | None = None,
) -> AsyncGenerator[Record, None]:
    """The records of any topic from ``start``, undecoded, as ``read`` goes through them."""
    reader = kafka.plain_reader(bootstrap, kafka_options or {})
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await kafka.partitions(reader, topic))]
        reader.assign(partitions)
        skip_below = await _position(reader, partitions, start)
        while True:
            fetched = await reader.getmany(timeout_ms=kafka.POLL_TIMEOUT_MS)
            for record in (r for part in fetched.values() for r in part):
                if record.timestamp >= skip_below.get(record.partition, record.timestamp):
                    yield record
            if not follow and await kafka.caught_up(reader):
                return
    finally:
        await kafka.stop(reader)


async def _position(reader: Consumer, partitions: list[TopicPartition], start: Start) -> dict[int, int]:
    """Seek every partition to ``start``. Returns, per partition, the publish time (ms) below which its
    records are still to be skipped: a broker answers where a time begins by its own clock (the
    embedded one by when it appended, whole batches at a time), which may be earlier than asked."""
    if start == "beginning":
        await reader.seek_to_beginning(*partitions)
        return {}
    since_ms = micros(datetime.now(UTC) if start == "end" else start) // US_PER_MS
    found = await reader.offsets_for_times(dict.fromkeys(partitions, since_ms))
    skip_below: dict[int, int] = {}
    for tp in partitions:
        answer = found.get(tp)
        if answer is None:  # nothing published since: from the end
            await reader.seek_to_end(tp)
        else:
            reader.seek(tp, answer.offset)
            skip_below[tp.partition] = since_ms
    return skip_below
