"""In-flight accounting (journal mode): what the journal has published and not yet let go of.

Each batch the journal's publisher got acknowledged becomes a *flight*: where it ends in the journal,
how many callbacks it holds, and the span of raw-topic offsets they landed on. Flights are kept oldest
first, in journal order, so letting go of the oldest stored flights is letting go of a journal prefix.
Pure bookkeeping: no I/O, no clock, no broker.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ringback.edge.journal import Position


@dataclass(frozen=True)
class Flight:
    """Callbacks published together: where they end in the journal, and where they landed."""

    end: Position
    records: int
    spans: dict[int, tuple[int, int]]  # raw-topic partition -> (lowest, highest) offset


class Flights:
    """The flights not let go of, oldest first.

    Promises: iteration, ``oldest_stored`` and ``window`` are in journal order; ``records`` is the sum
    of the callbacks all flights hold and ``lowest_offsets`` the lowest offset per partition they hold,
    each kept as flights come and go (constant time to read, however many flights a stalled store
    left behind); ``drop`` costs the flights it drops. Expects: flights added in journal order (the
    publisher adds each batch as it is acknowledged), a prefix dropped only once the journal let go of it.
    """

    def __init__(self) -> None:
        self._queue: deque[Flight] = deque()
        self._records = 0
        # Per partition, the flights that hold the lowest offset of every suffix of the queue
        # (lows rising left to right): the first is the partition's lowest, and stays right as
        # flights leave at the front, arrive at the back, or a republished one replaces the oldest.
        self._lowest: dict[int, deque[tuple[int, Flight]]] = {}

    def __iter__(self) -> Iterator[Flight]:
        return iter(self._queue)

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def records(self) -> int:
        return self._records

    def add(self, flight: Flight) -> None:
        self._queue.append(flight)
        self._records += flight.records
        for partition, (low, _) in flight.spans.items():
            candidates = self._lowest.setdefault(partition, deque())
            while candidates and candidates[-1][0] >= low:
                candidates.pop()
            candidates.append((low, flight))

    def clear(self) -> None:
        self._queue.clear()
        self._records = 0
        self._lowest.clear()

    def oldest_stored(self, stored: Callable[[Flight], bool]) -> list[Flight]:
        """The oldest flights for which ``stored`` holds, up to the first for which it does not."""
        return list(itertools.takewhile(stored, self._queue))

    def drop(self, done: list[Flight]) -> None:
        """Forget ``done``, the oldest flights (as ``oldest_stored`` gave them); stops at the first of
        them that is no longer the oldest (the flights were cleared meanwhile)."""
        for flight in done:
            if not self._queue or self._queue[0] is not flight:
                return
            self._pop_oldest()

    def lowest_offsets(self) -> dict[int, int]:
        """Per raw-topic partition, the lowest offset a flight still holds."""
        return {partition: candidates[0][0] for partition, candidates in self._lowest.items()}

    def window(self, size: int) -> list[Flight]:
        """The ``size`` oldest flights (fewer when there are fewer)."""
        return list(itertools.islice(self._queue, size))

    def replace_oldest(self, count: int, flight: Flight) -> None:
        """The ``count`` oldest flights were published again, together, as ``flight``."""
        for _ in range(count):
            self._pop_oldest()
        self._queue.appendleft(flight)
        self._records += flight.records
        for partition, (low, _) in flight.spans.items():
            candidates = self._lowest.setdefault(partition, deque())
            if not candidates or low < candidates[0][0]:  # otherwise never the lowest while it is held
                candidates.appendleft((low, flight))

    def _pop_oldest(self) -> None:
        flight = self._queue.popleft()
        self._records -= flight.records
        for partition in flight.spans:
            candidates = self._lowest[partition]
            if candidates and candidates[0][1] is flight:
                candidates.popleft()
            if not candidates:
                del self._lowest[partition]
