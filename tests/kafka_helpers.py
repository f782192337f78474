"""Reading and writing topics of the real broker from tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition


async def read_topic(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout_s: float = 20.0,
    where: Callable[[ConsumerRecord], bool] | None = None,
) -> list[ConsumerRecord]:
    """The records of ``topic`` (those ``where`` accepts), read from the beginning until ``expected`` arrived or time
    ran out."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                await consumer.topics()
                await asyncio.sleep(0.1)
        assert partitions, f"topic {topic} does not exist"
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        records: list[ConsumerRecord] = []
        while len(records) < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(r for r in batch if where is None or where(r))
        return records
    finally:
        await consumer.stop()


async def produce(
    bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=value, key=key, headers=headers) for key, value, headers in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(topic) or set()
        result = {}
        for p in partitions:
            result[p] = await consumer.committed(TopicPartition(topic, p)) or 0
        return result
    finally:
        await consumer.stop()


def next_offsets(records: list[ConsumerRecord]) -> dict[int, int]:
    """Per partition, the offset after the last record read (what a caught-up group has committed)."""
    result: dict[int, int] = {}
    for record in records:
        result[record.partition] = max(result.get(record.partition, 0), record.offset + 1)
    return result


async def lag(bootstrap: str, group: str, topic: str) -> int:
    """Records of ``topic`` that ``group`` has not committed yet (all partitions)."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        await reader.topics()
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or set()]
        ends = await reader.end_offsets(partitions) if partitions else {}
    finally:
        await reader.stop()
    committed = await committed_offsets(bootstrap, group, topic)
    return sum(max(0, end - committed.get(tp.partition, 0)) for tp, end in ends.items())
