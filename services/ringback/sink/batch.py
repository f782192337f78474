"""A sink batch: the rows waiting to be inserted together, and the offsets they make committable."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from ringback.runtime.dead_letter import DeadLetter
from ringback.runtime.ledger import LedgerRow
from ringback.runtime.stream.backend import Message, Partition


@dataclass
class InsertBatch:
    #: Normalized-topic messages whose header names a known schema; their bodies are not decoded.
    events: list[Message] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    ledger: list[LedgerRow] = field(default_factory=list)
    first_offsets: dict[Partition, int] = field(default_factory=dict)
    next_offsets: dict[Partition, int] = field(default_factory=dict)
    opened_at: float = 0.0

    @property
    def event_count(self) -> int:
        return len(self.events)

    @property
    def row_count(self) -> int:
        return self.event_count + len(self.dead_letters) + len(self.ledger)

    @property
    def empty(self) -> bool:
        return not self.next_offsets

    def track(self, message: Message) -> None:
        if self.empty:
            self.opened_at = time.monotonic()
        self.first_offsets.setdefault(message.partition, message.offset)
        self.next_offsets[message.partition] = message.next_offset

    def age_s(self) -> float:
        return 0.0 if self.empty else time.monotonic() - self.opened_at

    def dedup_token(self, table: str) -> str:
        """Same offsets -> same token, so a retried insert of this batch is dropped by ClickHouse."""
        spans = sorted((p.topic, p.index, self.first_offsets[p], end) for p, end in self.next_offsets.items())
        span = ",".join(f"{topic}:{index}:{first}-{end}" for topic, index, first, end in spans)
        return hashlib.sha256(f"{table}|{span}".encode()).hexdigest()
