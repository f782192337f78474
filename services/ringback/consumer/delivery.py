"""What the kit hands a job: each message decoded (``Delivered``), a poll's worth sorted by the dedupe rule
(``Batch``), the run's counts (``Summary``), and an event made ready for JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ringback.consumer.dedupe import Verdict
from ringback.consumer.kafka import Record
from ringback.consumer.times import iso_utc

DEFAULT_TOPIC = "ringback.normalized.v1"
TENANT_HEADER = "tenant"


@dataclass(frozen=True, slots=True)
class Delivered:
    """One message of the topic, decoded."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int
    event: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.event["event_id"])

    @property
    def tenant(self) -> str:
        """The tenant ("" for the tenant-less routes): the event's field, else the header (v1 events)."""
        found = self.event.get("tenant") or dict(self.headers).get(TENANT_HEADER, b"").decode()
        return str(found)


def delivered(record: Record, event: dict[str, Any]) -> Delivered:
    headers = tuple((name, bytes(value)) for name, value in record.headers or ())
    return Delivered(record.topic, record.partition, record.offset, record.key, headers, record.timestamp, event)


@dataclass
class Batch:
    """What one poll brought, sorted by the dedupe rule. ``events`` may be empty (a batch of copies)."""

    events: list[Delivered] = field(default_factory=list)
    duplicates: list[Delivered] = field(default_factory=list)
    #: Later copies whose billing values differ from the first copy's: not billed, worth a look.
    conflicts: list[Delivered] = field(default_factory=list)
    #: Per (topic, partition), the offset committed once the callback returns.
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    #: The broker's cluster id when the batch was fetched: offsets mean something only within one.
    incarnation: str | None = None

    def add(self, verdict: Verdict, copy: Delivered) -> None:
        {Verdict.FIRST: self.events, Verdict.DUPLICATE: self.duplicates, Verdict.CONFLICT: self.conflicts}[
            verdict
        ].append(copy)
        self.next_offsets[(copy.topic, copy.partition)] = copy.offset + 1


@dataclass
class Summary:
    batches: int = 0
    events: int = 0
    duplicates: int = 0
    conflicts: int = 0
    #: Messages re-read before the committed offsets to remember their ids (not handed to the job).
    remembered: int = 0
    #: Times the broker was found to have started afresh (a new cluster id) while or since last running.
    incarnations: int = 0


#: The job's callback: a plain function runs in a worker thread (the consumer keeps its group
#: membership alive meanwhile); a coroutine function runs on the consumer's loop.
Process = Callable[[Batch], Awaitable[None] | None]


def json_ready(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event with money as exact decimal text and times as ISO 8601 UTC (``…Z``), for JSON."""
    return {name: _json_value(value) for name, value in event.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return iso_utc(value)
    return value
