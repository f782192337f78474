"""Publishing many messages as whole record batches, one delivery future per batch.

``AIOKafkaProducer.send`` costs about 12 µs a message in Python (a future, a partitioner call and
accumulator bookkeeping each); a worker that publishes every message of a poll at once can fill
record batches itself and hand each to ``send_batch``, about 4 µs a message on the same broker.
Partitions are chosen exactly as the producer's own partitioner would, so keyed messages keep their
partition whichever way they are sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ringback.runtime.kafka import crc32_partitioner
from ringback.runtime.stream.backend import Producer, RecordBatch

Headers = list[tuple[str, bytes]]
#: A message larger than this is sent alone, through the producer's ``send`` and its max_request_size
#: check (an empty record batch takes a message of any size); smaller ones fill batches. Below every
#: max_request_size ringback sets (the body bound plus 64 KiB).
ALONE_BYTES = 16 * 1024


@dataclass(frozen=True)
class Delivery:
    """One batch (or one oversized message) on its way: acknowledged at ``base offset + count``."""

    topic: str
    partition: int
    count: int
    future: asyncio.Future[Any]


def ends_of(deliveries: list[Delivery], results: list[Any]) -> dict[tuple[str, int], int]:
    """Per (topic, partition), the offset just after the last acknowledged message (``results`` are the
    deliveries' RecordMetadata, in order)."""
    ends: dict[tuple[str, int], int] = {}
    for delivery, meta in zip(deliveries, results, strict=True):
        where = (delivery.topic, delivery.partition)
        ends[where] = max(ends.get(where, 0), meta.offset + delivery.count)
    return ends


class BatchedSends:
    """Collects one unit of work's messages; ``flush`` sends what is left and returns every delivery,
    all of which must succeed before the work may count as published."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self._open: dict[tuple[str, int], RecordBatch] = {}
        self._partitions: dict[str, list[int]] = {}
        self._deliveries: list[Delivery] = []

    async def partitions(self, topic: str) -> list[int]:
        """``topic``'s partitions, in order (asked of the producer once per topic)."""
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(await self.producer.partitions_for(topic))
        return partitions

    async def add(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue one message; ``partition``: where it goes (None: where the producer's partitioner would
        put ``key``)."""
        if partition is None:
            partitions = self._partitions.get(topic)  # looked up here: no coroutine per message once known
            if partitions is None:
                partitions = await self.partitions(topic)
            partition = crc32_partitioner(key, partitions, partitions)
        if len(value) > ALONE_BYTES:
            await self._send_alone(topic, partition, value, key, headers)
            return
        batch = self._open.get((topic, partition))
        if batch is None:
            batch = self._open[(topic, partition)] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers or []) is not None:
            return
        await self._send(batch, topic, partition)  # full: on its way
        batch = self._open[(topic, partition)] = self.producer.create_batch()
        batch.append(key=key, value=value, timestamp=None, headers=headers or [])  # an empty batch takes any

    async def _send_alone(
        self, topic: str, partition: int, value: bytes, key: bytes | None, headers: Headers | None
    ) -> None:
        """After what the partition's open batch holds (order kept), through the producer's own ``send``,
        which refuses a message larger than its max_request_size (an empty batch takes any size)."""
        batch = self._open.pop((topic, partition), None)
        if batch is not None and batch.record_count():
            await self._send(batch, topic, partition)
        future = await self.producer.send(topic, value=value, key=key, headers=headers, partition=partition)
        self._deliveries.append(Delivery(topic, partition, 1, future))

    async def _send(self, batch: RecordBatch, topic: str, partition: int) -> None:
        count = batch.record_count()
        self._deliveries.append(
            Delivery(topic, partition, count, await self.producer.send_batch(batch, topic, partition=partition))
        )

    async def flush(self) -> list[Delivery]:
        for (topic, partition), batch in self._open.items():
            if batch.record_count():
                await self._send(batch, topic, partition)
        self._open.clear()
        deliveries, self._deliveries = self._deliveries, []
        return deliveries
