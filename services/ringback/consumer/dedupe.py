"""The dedupe rule: the first copy of an event wins, later copies are duplicates or conflicts; ids are
remembered in memory for a window of stream time and count."""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ringback.consumer.times import MICROSECOND, US_PER_S

#: Vendors resend within minutes to hours (Tencent retries twice; the CDR platform resends only on an
#: HTTP 500, at most three sends), and a replay after a crash publishes again what the edge's journal
#: still held: a day of stream time covers both with room to spare.
DEFAULT_MAX_AGE = timedelta(hours=24)
#: About 135 bytes of memory per remembered id: 1 M ids is ~135 MB, a full day at ~12 events/s.
DEFAULT_MAX_IDS = 1_000_000
#: Fields whose values a bill depends on: a resend that changes one of them is a conflict.
BILLING_FIELDS = ("charge", "duration_s", "billable_minutes", "status")


class Verdict(enum.Enum):
    FIRST = "first"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


def billing_values(event: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(event.get(name) for name in BILLING_FIELDS)


class DedupeWindow:
    """Which copy of an event wins (the first seen) and how long its id is remembered.

    Stream time is the newest ``received_at`` seen so far, so a job catching up on a backlog judges
    the backlog by its own times, not by the wall clock. An id is forgotten once stream time has moved
    ``max_age`` past the moment it was first seen, or when ``max_ids`` newer ids push it out. A copy
    that arrives after its id was forgotten counts as a first copy again.
    """

    def __init__(self, max_age: timedelta = DEFAULT_MAX_AGE, max_ids: int = DEFAULT_MAX_IDS) -> None:
        if max_ids <= 0 or max_age <= timedelta(0):
            raise ValueError("max_age and max_ids must be positive")
        self.max_age_us = max_age // MICROSECOND
        self.max_ids = max_ids
        self.clock_us = 0
        self._billing: dict[bytes | str, int] = {}  # id -> hash of the first copy's billing values
        self._order: deque[bytes | str] = deque()  # ids, first seen first
        self._seen_at: deque[list[int]] = deque()  # [second of stream time, ids first seen in it], oldest first
        self.forgotten_by_count = 0

    def __len__(self) -> int:
        return len(self._billing)

    def judge(self, event_id: str, received_at_us: int, billing: tuple[Any, ...]) -> Verdict:
        """The verdict on one copy; a first copy is remembered from now on."""
        self.clock_us = max(self.clock_us, received_at_us)
        self._expire()
        key = compact(event_id)
        first = self._billing.get(key)
        if first is not None:
            return Verdict.DUPLICATE if first == hash(billing) else Verdict.CONFLICT
        self._billing[key] = hash(billing)
        self._order.append(key)
        second = self.clock_us - self.clock_us % US_PER_S  # ids first seen within one second share a count
        if self._seen_at and self._seen_at[-1][0] == second:
            self._seen_at[-1][1] += 1
        else:
            self._seen_at.append([second, 1])
        while len(self._order) > self.max_ids:
            self._forget_oldest()
            self.forgotten_by_count += 1
        return Verdict.FIRST

    def horizon(self) -> timedelta:
        """How far back in stream time ids are remembered now (shorter than ``max_age`` when
        ``max_ids`` binds: then raise it, or expect duplicates older than this to pass)."""
        if not self._seen_at:
            return timedelta(0)
        return (self.clock_us - self._seen_at[0][0]) * MICROSECOND

    def _expire(self) -> None:
        cutoff = self.clock_us - self.max_age_us
        while self._seen_at and self._seen_at[0][0] < cutoff:
            for _ in range(self._seen_at[0][1]):
                self._forget_oldest()

    def _forget_oldest(self) -> None:
        del self._billing[self._order.popleft()]
        self._seen_at[0][1] -= 1
        if self._seen_at[0][1] == 0:
            self._seen_at.popleft()


def compact(event_id: str) -> bytes | str:
    """An event id as remembered: its 16 bytes (ids are 32 hex digits), or as given if it is not hex."""
    try:
        return bytes.fromhex(event_id)
    except ValueError:
        return event_id
