"""Kafka clients configured the one way ringback uses them: plain acks=all at-least-once."""

from __future__ import annotations

import asyncio
import contextlib
import random
import zlib

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from ringback import logs
from ringback.config import Settings

log = logs.get(__name__)

TOPIC_CREATE_ATTEMPTS = 20
TOPIC_CREATE_RETRY_S = 0.5
#: Raw callbacks are at most ``max_body_bytes`` plus headers; leave room for the envelope.
REQUEST_OVERHEAD_BYTES = 64 * 1024


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


def producer(settings: Settings, **overrides: object) -> AIOKafkaProducer:
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": settings.producer_linger_ms,
        "max_request_size": settings.max_body_bytes + REQUEST_OVERHEAD_BYTES,
        "request_timeout_ms": max(1000, int(settings.publish_timeout_s * 1000)),
        "partitioner": crc32_partitioner,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


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


async def assigned_consumer(settings: Settings, topic: str, from_end: bool) -> AIOKafkaConsumer:
    """A consumer of every partition of ``topic`` without a group (nothing committed), positioned at the
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
        await reader.stop()
        raise
    return reader
