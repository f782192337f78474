"""The broker, behind a boundary: what every role sees of Kafka, and never the client library itself.

Modelled on Sentry arroyo's ``backends/abstract``: the protocols here are what the roles need of a
consumer and a producer; :mod:`ringback.runtime.kafka` is the one implementation, on aiokafka, and the
one module above the protocols that may import it. The protocols are typing only: the producer is the
client's own (no wrapper, no extra call per message on the edge's hot path), and what the stream driver
consumes through is a thin adapter that turns records into ``Message``.

Failures. Every operation may raise ``BrokerError`` (:mod:`ringback.runtime.kafka`): the broker or the
way to it failed, and trying again later may succeed (retry). One kind is set apart: ``MessageTooLarge``
— the broker refuses this message, now and on every retry (invalid: never retry it, put it aside).
``MessageTooLarge`` is a ``BrokerError``, so whoever tells them apart catches it first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Partition:
    topic: str
    index: int


class Message:
    """One record as a role consumed it. Immutable by contract (``Final``); a plain class rather than a
    frozen dataclass, whose ``__init__`` costs ~3x as much, for a value built for every record a role
    reads."""

    __slots__ = ("headers", "key", "offset", "partition", "value")

    def __init__(self, partition: Partition, offset: int, key: bytes | None, value: bytes, headers: Headers) -> None:
        self.partition: Final = partition
        self.offset: Final = offset
        self.key: Final = key
        self.value: Final = value
        self.headers: Final = headers

    def _values(self) -> tuple[object, ...]:
        return (self.partition, self.offset, self.key, self.value, self.headers)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return (
            f"Message(partition={self.partition!r}, offset={self.offset!r}, key={self.key!r}, "
            f"value={self.value!r}, headers={self.headers!r})"
        )

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


class Reader(Protocol):
    """Every partition of one topic, outside any group (nothing is committed): for following a topic
    from a position, such as the edge following the progress topic from its end."""

    async def poll(self, timeout_ms: int) -> list[Message]:
        """What arrived since the last poll (may be empty)."""
        ...

    async def rewind(self) -> None:
        """From the next poll on, read every partition from its beginning again."""
        ...

    async def stop(self) -> None: ...


class Acknowledgement(Protocol):
    """Where the broker put a message it acknowledged."""

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


class RecordBatch(Protocol):
    """Messages for one partition, filled by the caller and sent whole (``Producer.send_batch``)."""

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: int | None, headers: Headers) -> object:
        """Add a message; None when it does not fit (the batch is full, or the message larger than a batch)."""
        ...

    def record_count(self) -> int: ...


class Producer(Protocol):
    """Publishes with acks=all. ``send`` returns once the message is queued; the future it returns is
    resolved when the broker acknowledged it, or fails with a ``BrokerError``."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Flush what is queued, then close."""
        ...

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future[Acknowledgement]: ...

    async def partitions_for(self, topic: str) -> set[int]: ...

    def create_batch(self) -> RecordBatch: ...

    async def send_batch(self, batch: RecordBatch, topic: str, *, partition: int) -> asyncio.Future[Acknowledgement]:
        """Send a batch made by ``create_batch``; its future resolves with the first message's place."""
        ...
