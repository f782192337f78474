"""The Kafka room: the backend's one implementation, on aiokafka, and the only module of ringback that
imports it (the billing-job consumer kit, a standalone kit, keeps its own adapter).

Clients are configured the one way ringback uses them: plain acks=all at-least-once. Above this module
the broker is seen through the protocols of :mod:`ringback.runtime.stream.backend` and the errors below;
tests/unit/test_kafka_room.py keeps it so.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, TopicAlreadyExistsError

from ringback import logs
from ringback.config import Settings
from ringback.runtime.stream.backend import Message, Partition, Producer, Reader

log = logs.get(__name__)

# The client's own exception classes under ringback's names: catching them costs nothing on the hot path
# and no error is translated on its way up.
#: Every failure of the broker or of the way to it: trying again later may succeed.
BrokerError: type[Exception] = KafkaError
#: The broker refuses this message now and on every retry (larger than it takes): never retry it. It is
#: a ``BrokerError`` too, so whoever tells the two apart catches it first.
MessageTooLarge: type[Exception] = MessageSizeTooLargeError

TOPIC_CREATE_ATTEMPTS = 20
TOPIC_CREATE_RETRY_S = 0.5
#: Raw callbacks are at most ``max_body_bytes`` plus headers; leave room for the envelope.
REQUEST_OVERHEAD_BYTES = 64 * 1024


#: A record batch holds up to this many bytes (aiokafka's default is 16 KiB): a journal batch or a poll's
#: events go in a few large batches, which costs the client ~30 % and the embedded broker ~35 % less per
#: message than 16 KiB ones. Never above max_request_size.
MAX_BATCH_BYTES = 256 * 1024

#: Progress messages are small and few; one partition keeps them in one place.
PROGRESS_PARTITIONS = 1
ASSIGN_TIMEOUT_S = 10.0


def all_topics(settings: Settings) -> list[str]:
    return [
        settings.topic_raw,
        settings.topic_normalized,
        settings.topic_dlq,
        settings.topic_ledger,
        settings.topic_progress,
    ]


def partitions_of(settings: Settings, topic: str) -> int:
    return PROGRESS_PARTITIONS if topic == settings.topic_progress else settings.kafka_partitions


async def ensure_topics(settings: Settings, bootstrap: str | None = None) -> None:
    """Create the topics that do not exist yet; safe to call from every role and every start."""
    bootstrap = bootstrap or settings.kafka_bootstrap
    wanted = all_topics(settings)
    last_error: Exception | None = None
    for _ in range(TOPIC_CREATE_ATTEMPTS):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                new = [NewTopic(t, partitions_of(settings, t), settings.kafka_replication) for t in missing]
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(new)
                log.info("topics created", topics=missing, partitions=settings.kafka_partitions)
            return
        except KafkaError as exc:
            last_error = exc
            await asyncio.sleep(TOPIC_CREATE_RETRY_S)
        finally:
            await admin.close()
    raise RuntimeError(f"could not create topics on {bootstrap}: {last_error}")


async def ensure_topics_if_allowed(settings: Settings) -> None:
    """Production roles create missing topics when `kafka_create_topics` allows it; a broker that refuses
    (no ACL to create) is logged, and the role goes on with the topics that exist."""
    if not settings.kafka_create_topics:
        return
    try:
        await ensure_topics(settings)
    except RuntimeError as exc:
        log.warning("could not create topics; continuing with those that exist", error=str(exc))


def crc32_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Same key, same partition (per-call/message ordering), hashed in C rather than aiokafka's pure-Python murmur2."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[zlib.crc32(key) % len(all_partitions)]


def producer(settings: Settings, **overrides: object) -> Producer:
    max_request_size = settings.max_body_bytes + REQUEST_OVERHEAD_BYTES
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": settings.producer_linger_ms,
        "max_request_size": max_request_size,
        "max_batch_size": min(MAX_BATCH_BYTES, max_request_size),
        "request_timeout_ms": max(1000, int(settings.publish_timeout_s * 1000)),
        "partitioner": crc32_partitioner,
    }
    options.update(overrides)
    producer: Producer = AIOKafkaProducer(**options)
    return producer


async def refresh_metadata(producer: Producer) -> bool:
    """Ask the broker for the cluster's metadata now (a readiness probe): True when it answered."""
    return bool(await cast(Any, producer).client.force_metadata_update())


def consumer(settings: Settings, topics: list[str], group_id: str, **overrides: object) -> AIOKafkaConsumer:
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": settings.max_body_bytes + REQUEST_OVERHEAD_BYTES,
        "fetch_max_bytes": max(52_428_800, settings.max_body_bytes * 4),
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


async def assigned_reader(settings: Settings, topic: str, from_end: bool) -> Reader:
    """A reader of every partition of ``topic`` without a group (nothing committed), positioned at the
    end (only what comes from now on) or the beginning."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await reader.start()
    try:
        deadline = asyncio.get_running_loop().time() + ASSIGN_TIMEOUT_S
        partitions = reader.partitions_for_topic(topic)
        while not partitions:
            if asyncio.get_running_loop().time() > deadline:
                raise KafkaError(f"topic {topic} has no partitions")
            await reader.topics()
            await asyncio.sleep(TOPIC_CREATE_RETRY_S)
            partitions = reader.partitions_for_topic(topic)
        reader.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        if from_end:
            await reader.seek_to_end()
        else:
            await reader.seek_to_beginning()
    except BaseException:
        await stop_consumer(reader)
        raise
    return KafkaReader(reader)


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a role's ``consumer``, also with the broker gone (see ``stopped_with_broker_gone``)."""
    if await stopped_with_broker_gone(consumer):
        log.info("consumer stopped with the broker gone")


async def stopped_with_broker_gone(consumer: AIOKafkaConsumer) -> bool:
    """Stop ``consumer``; True when the broker was gone. Then aiokafka's fetcher lets the cancellation of
    its own background tasks out of ``stop()`` (aiokafka issue 647), which would end a role or a billing
    job with a traceback in the middle of its orderly stop. Only that one is swallowed: a cancellation of
    the task that is stopping still propagates."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return True
    return False


def _messages(partition: Partition, records: Sequence[Any]) -> list[Message]:
    return [Message(partition, r.offset, r.key, r.value or b"", tuple(r.headers or ())) for r in records]


class KafkaReader:
    """``Reader`` on an assigned aiokafka consumer."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer

    async def poll(self, timeout_ms: int) -> list[Message]:
        polled = await self._consumer.getmany(timeout_ms=timeout_ms)
        return [m for tp, records in polled.items() for m in _messages(Partition(tp.topic, tp.partition), records)]

    async def rewind(self) -> None:
        await self._consumer.seek_to_beginning()

    async def stop(self) -> None:
        await stop_consumer(self._consumer)


class KafkaConsumer:
    """``Consumer`` (a consumer group member, for the stream driver) on aiokafka."""

    def __init__(self, settings: Settings, topics: Sequence[str], group: str) -> None:
        self._consumer: AIOKafkaConsumer = consumer(settings, list(topics), group)
        self._next: dict[Partition, int] = {}  # where the next poll continues, per partition polled

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await stop_consumer(self._consumer)

    async def poll(self, timeout_ms: int, max_records: int) -> list[Message]:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        messages = []
        for tp, records in batches.items():
            partition = Partition(tp.topic, tp.partition)
            messages += _messages(partition, records)
            if records:
                self._next[partition] = records[-1].offset + 1
        return messages

    async def commit(self, offsets: Mapping[Partition, int]) -> None:
        if offsets:
            await self._consumer.commit({TopicPartition(p.topic, p.index): offset for p, offset in offsets.items()})

    def seek(self, partition: Partition, offset: int) -> None:
        self._consumer.seek(TopicPartition(partition.topic, partition.index), offset)
        self._next[partition] = offset

    def pause(self) -> None:
        self._consumer.pause(*self._consumer.assignment())

    def resume(self) -> None:
        self._consumer.resume(*self._consumer.assignment())

    def lag(self) -> dict[Partition, int]:
        lags: dict[Partition, int] = {}
        for tp in self._consumer.assignment():
            partition = Partition(tp.topic, tp.partition)
            end = self._consumer.highwater(tp)
            if end is not None:
                lags[partition] = max(0, end - self._next.get(partition, end))
        return lags


# --- consumer groups (the supervisor's look before recycling the embedded broker) ---
async def consumer_groups(settings: Settings) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        return [str(group) for group, *_ in await admin.list_consumer_groups()]
    finally:
        await admin.close()


async def committed_offsets(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """Partition -> the group's committed offset on ``topic``, 0 for a partition it has not committed on
    (empty when it has none at all); read without joining the group."""
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        await reader.topics()
        partitions = reader.partitions_for_topic(topic) or set()
        found = {p: await reader.committed(TopicPartition(topic, p)) for p in sorted(partitions)}
    finally:
        await stop_consumer(reader)
    if all(offset is None for offset in found.values()):
        return {}
    return {p: int(offset or 0) for p, offset in found.items()}


async def count_from(settings: Settings, topic: str, offsets: Mapping[int, int], look_s: float, most: int) -> int:
    """How many messages of ``topic`` one look of ``look_s`` finds at or after ``offsets`` (partition ->
    offset), at most about ``most`` (0: none)."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, auto_offset_reset="latest"
    )
    await reader.start()
    try:
        reader.assign([TopicPartition(topic, p) for p in offsets])
        for p, offset in offsets.items():
            reader.seek(TopicPartition(topic, p), offset)
        deadline = time.monotonic() + look_s
        while time.monotonic() < deadline:
            fetched = await reader.getmany(timeout_ms=int(look_s * 1000), max_records=most)
            unread = sum(len(records) for records in fetched.values())
            if unread:
                return int(unread)
        return 0
    finally:
        await stop_consumer(reader)
