"""The dead-letter guard: a bad deploy must not quietly dead-letter everything.

It judges requests, not reports: a request is *bad* when nothing in it could be read (every report, or
the request as a whole, went to the dead-letter topic). Over the last ``window`` requests it trips when
more than ``ratio`` of them are bad, there are at least ``min_requests`` of them, and the bad ones carry
at least ``min_distinct`` different bodies — so one request with a thousand unreadable reports, or one
unreadable body resent a thousand times, cannot stop ingestion for everyone.

A tripped guard never loops and never exits: the worker leaves the poll that tripped it unpublished and
uncommitted (the data stays where it is), stops consuming, and raises the alarm (readiness, the
``ringback_normalizer_guard_tripped`` metric, one error log line). That gives an operator
``pause_s`` to look at ``ringback.dead_letters`` and deploy a fix (a restart starts a fresh guard).
After the pause the held requests are processed as they are — what is unreadable goes to the
dead-letter topic, from where it can be replayed — and the guard watches afresh.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestVerdict:
    bad: bool  # nothing of the request could be read
    body_digest: bytes  # tells resends of one body apart from different bodies


@dataclass(frozen=True, slots=True)
class Trip:
    bad: int
    window: int
    distinct_bad: int
    ratio: float
    resumes_at: float  # on the guard's clock

    def describe(self) -> str:
        return (
            f"{self.bad} of the last {self.window} requests were entirely dead-lettered ({self.distinct_bad} "
            "different bodies; "
            f"limit {self.ratio:.0%}): consuming paused, nothing of this poll published or committed"
        )


class DeadLetterGuard:
    def __init__(
        self,
        ratio: float,
        window: int,
        min_requests: int,
        min_distinct: int,
        pause_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self.min_requests = min_requests
        self.min_distinct = min_distinct
        self.pause_s = pause_s
        self.clock = clock
        self.recent: deque[RequestVerdict] = deque(maxlen=max(1, window))
        self.bad_in_window = 0
        self.bad_bodies: Counter[bytes] = Counter()
        self.trip: Trip | None = None
        self._let_next_poll_through = False

    @property
    def disabled(self) -> bool:
        return self.ratio >= 1

    def judge(self, verdicts: Sequence[RequestVerdict]) -> Trip | None:
        """Record one poll's requests; a Trip when this poll must be held back (the guard is then
        tripped until ``pause_s`` has passed)."""
        if self.disabled:
            return None
        if self._let_next_poll_through:
            self._let_next_poll_through = False
            return None
        for verdict in verdicts:
            self._record(verdict)
        bad_share_exceeded = self.bad_in_window > self.ratio * len(self.recent)
        if len(self.recent) >= self.min_requests and bad_share_exceeded and len(self.bad_bodies) >= self.min_distinct:
            self.trip = Trip(
                self.bad_in_window, len(self.recent), len(self.bad_bodies), self.ratio, self.clock() + self.pause_s
            )
            return self.trip
        return None

    def _record(self, verdict: RequestVerdict) -> None:
        if len(self.recent) == self.recent.maxlen:
            leaving = self.recent[0]
            if leaving.bad:
                self.bad_in_window -= 1
                self.bad_bodies[leaving.body_digest] -= 1
                if self.bad_bodies[leaving.body_digest] <= 0:
                    del self.bad_bodies[leaving.body_digest]
        self.recent.append(verdict)
        if verdict.bad:
            self.bad_in_window += 1
            self.bad_bodies[verdict.body_digest] += 1

    @property
    def tripped(self) -> bool:
        return self.trip is not None

    def pause_over(self) -> bool:
        return self.trip is not None and self.clock() >= self.trip.resumes_at

    def release(self) -> None:
        """After the pause: the held poll goes through as it is, and the guard watches afresh."""
        self.trip = None
        self.recent.clear()
        self.bad_in_window = 0
        self.bad_bodies.clear()
        self._let_next_poll_through = True
