"""Whole-batch publishing against the real broker: partitions, order, headers and outsized messages."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable

import pytest

from ringback.config import Settings
from ringback.runtime import kafka
from ringback.runtime.batched_sends import BatchedSends, ends_of
from ringback.runtime.broker import EmbeddedBroker
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.integration


async def test_keyed_messages_keep_the_producers_partition_and_their_order(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(kafka_bootstrap=broker.bootstrap)
    await kafka.ensure_topics(settings)
    topic = settings.topic_normalized
    producer = kafka.producer(settings)
    await producer.start()
    try:
        sends = BatchedSends(producer)
        sent = [(f"call-{i % 7}".encode(), f"{i:05d}".encode() + b"x" * (i % 900)) for i in range(600)]
        big = b"B" * 50_000  # bigger than a whole record batch
        for key, value in sent:
            await sends.add(topic, value, key=key, headers=[("n", value[:5])])
        await sends.add(topic, big, key=b"call-big")
        deliveries = await sends.flush()
        assert 1 < len(deliveries) < len(sent) / 10  # batches, not one delivery per message
        ends = ends_of(deliveries, await asyncio.gather(*(d.future for d in deliveries)))
        assert await sends.flush() == []
    finally:
        await producer.stop()

    records = await read_topic(settings.kafka_bootstrap, topic, expected=len(sent) + 1)
    assert len(records) == len(sent) + 1
    partitions = settings.kafka_partitions
    for record in records:
        assert record.partition == zlib.crc32(record.key) % partitions  # where AIOKafkaProducer.send puts it
    for n in range(7):
        in_partition = [r.value for r in records if r.key == f"call-{n}".encode()]
        assert in_partition == [v for k, v in sent if k == f"call-{n}".encode()]
    assert next(r for r in records if r.key == b"call-big").value == big
    assert all(dict(r.headers)["n"] == r.value[:5] for r in records if r.key != b"call-big")
    # Where each partition's messages end, as the acknowledgements say: what progress claims rest on.
    assert ends == {
        (topic, p): max(r.offset for r in records if r.partition == p) + 1 for p in {r.partition for r in records}
    }


async def test_a_message_over_the_producers_request_size_is_refused_and_order_is_kept(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    """An empty record batch takes a message of any size; the producer's own bound must still refuse one
    larger than max_request_size (as ``send`` does), and a large message sent alone keeps its place."""
    settings = make_settings(kafka_bootstrap=broker.bootstrap)
    await kafka.ensure_topics(settings)
    topic = settings.topic_normalized
    producer = kafka.producer(settings, max_request_size=100_000)
    await producer.start()
    try:
        sends = BatchedSends(producer)
        with pytest.raises(kafka.MessageTooLarge):
            await sends.add(topic, b"T" * 200_000, key=b"one")
        values = [b"before", b"L" * 50_000, b"after"]
        for value in values:
            await sends.add(topic, value, key=b"one")
        deliveries = await sends.flush()
        await asyncio.gather(*(d.future for d in deliveries))
    finally:
        await producer.stop()
    records = await read_topic(settings.kafka_bootstrap, topic, expected=3, where=lambda r: r.key == b"one")
    assert [r.value for r in sorted(records, key=lambda r: r.offset)] == values
