"""Publishing raw callbacks to the broker, acknowledged with acks=all."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ringback import logs
from ringback.config import Settings
from ringback.runtime import kafka
from ringback.runtime.batched_sends import BatchedSends
from ringback.runtime.kafka import BrokerError, MessageTooLarge
from ringback.runtime.raw import RawCallback
from ringback.runtime.stream.backend import Acknowledgement, Producer

READINESS_PROBE_TIMEOUT_S = 1.0
PRODUCER_RETRY_S = 1.0

log = logs.get(__name__)


@dataclass
class Published:
    """What ``publish_all`` got acknowledged: per batch, its partition and its first and last offset;
    and the callbacks the producer refused as larger than it ever sends (none of them was sent)."""

    spans: list[tuple[int, int, int]] = field(default_factory=list)
    too_large: list[RawCallback] = field(default_factory=list)


class Publisher:
    """Publishes raw callbacks and waits for the broker's acks=all acknowledgement."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: Producer | None = None
        self._starting: asyncio.Task[None] | None = None
        self._turn = -1  # the raw topic's partition the last publish_all went to, by index

    @property
    def ready(self) -> bool:
        return self.producer is not None

    async def start(self) -> None:
        """Connect now if the broker answers; otherwise keep trying in the background."""
        self._starting = asyncio.create_task(self._connect_until_up())
        await asyncio.wait({self._starting}, timeout=self.settings.publish_timeout_s)

    async def _connect_until_up(self) -> None:
        while True:
            producer = kafka.producer(self.settings)
            try:
                await producer.start()
            except BrokerError as exc:
                await producer.stop()
                log.warning("broker not reachable, retrying", error=str(exc))
                await asyncio.sleep(PRODUCER_RETRY_S)
                continue
            self.producer = producer
            log.info("publisher connected", bootstrap=self.settings.kafka_bootstrap, topic=self.settings.topic_raw)
            return

    async def publish(self, raw: RawCallback) -> Acknowledgement:
        """Publish and wait for the broker's acknowledgement; returns where the callback landed."""
        if self.producer is None:
            raise BrokerError("not connected to the broker yet")
        delivery = await self.producer.send(
            self.settings.topic_raw, value=raw.body, key=raw.ingest_id.encode(), headers=raw.headers()
        )
        return await delivery

    async def publish_all(self, raws: list[RawCallback]) -> Published:
        """Publish ``raws`` as whole record batches, all to one partition of the raw topic (the next one
        each call; one acknowledgement per batch, not per callback) and wait until the broker
        acknowledged every batch. Raises ``BrokerError`` when any batch was not
        acknowledged (what did get through is absorbed by the event ids when sent again) — a batch the
        broker refused for its size too, as ``MessageTooLarge``: then ``publish`` one at a time tells
        which callback it was."""
        if self.producer is None:
            raise BrokerError("not connected to the broker yet")
        sends = BatchedSends(self.producer)
        published = Published()
        topic = self.settings.topic_raw
        partition = await self._next_partition(sends, topic)
        for raw in raws:
            try:
                await sends.add(topic, raw.body, key=raw.ingest_id.encode(), headers=raw.headers(), partition=partition)
            except MessageTooLarge:
                published.too_large.append(raw)
        deliveries = await sends.flush()
        acknowledged = await asyncio.gather(*(delivery.future for delivery in deliveries), return_exceptions=True)
        for delivery, ack in zip(deliveries, acknowledged, strict=True):
            if isinstance(ack, BaseException):
                raise ack
            published.spans.append((delivery.partition, ack.offset, ack.offset + delivery.count - 1))
        return published

    async def _next_partition(self, sends: BatchedSends, topic: str) -> int:
        """The raw topic's partitions in turn, one per ``publish_all``: the raw topic promises no order
        between callbacks, so a whole batch goes to one partition — one produce request and one
        acknowledgement, where keying by ingest id spread every batch over all of them."""
        partitions = await sends.partitions(topic)
        self._turn = (self._turn + 1) % len(partitions)
        return partitions[self._turn]

    async def publish_to(self, topic: str, value: bytes) -> None:
        if self.producer is None:
            raise BrokerError("not connected to the broker yet")
        await (await self.producer.send(topic, value=value))

    async def probe(self) -> bool:
        if self.producer is None:
            return False
        try:
            return await asyncio.wait_for(kafka.refresh_metadata(self.producer), READINESS_PROBE_TIMEOUT_S)
        except (TimeoutError, BrokerError):
            return False

    async def stop(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        if self.producer is not None:
            await self.producer.stop()  # flushes what is in flight
            self.producer = None
