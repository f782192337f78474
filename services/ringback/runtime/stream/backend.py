"""The consumer side of the broker, behind a boundary: the stream driver and the steps see messages
and partitions, never aiokafka.

``Consumer`` is what the driver needs from a consumer group member; ``KafkaConsumer`` is the one
implementation, on aiokafka. Keeping the contract this small is what lets every role share one driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from ringback.config import Settings
from ringback.runtime import kafka

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Partition:
    topic: str
    index: int


@dataclass(frozen=True, slots=True)
class Message:
    partition: Partition
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers

    @property
    def topic(self) -> str:
        return self.partition.topic

    @property
    def next_offset(self) -> int:
        return self.offset + 1


class Consumer(Protocol):
    """A member of a consumer group. Offsets are committed only when the driver says so."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def poll(self, timeout_ms: int, max_records: int) -> list[Message]:
        """The next messages of the assigned partitions, in offset order per partition (may be empty)."""
        ...

    async def commit(self, offsets: Mapping[Partition, int]) -> None:
        """Commit: every message before ``offsets[partition]`` is done."""
        ...

    def seek(self, partition: Partition, offset: int) -> None: ...

    def pause(self) -> None:
        """Stop fetching from every assigned partition (polling goes on, so membership stays alive)."""
        ...

    def resume(self) -> None: ...

    def lag(self) -> dict[Partition, int]:
        """Messages between the position and the partition's end, as the last fetch saw it."""
        ...


class KafkaConsumer:
    def __init__(self, settings: Settings, topics: Sequence[str], group: str) -> None:
        self._consumer: AIOKafkaConsumer = kafka.consumer(settings, list(topics), group)
        self._next: dict[Partition, int] = {}  # where the next poll continues, per partition polled

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int, max_records: int) -> list[Message]:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        messages = []
        for tp, records in batches.items():
            partition = Partition(tp.topic, tp.partition)
            messages += [Message(partition, r.offset, r.key, r.value or b"", tuple(r.headers or ())) for r in records]
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
