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
    of the callbacks all flights hold. Expects: flights added in journal order (the publisher adds each
    batch as it is acknowledged), a prefix dropped only once the journal let go of it.
    """

    def __init__(self) -> None:
        self._queue: deque[Flight] = deque()

    def __iter__(self) -> Iterator[Flight]:
        return iter(self._queue)

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def records(self) -> int:
        return sum(flight.records for flight in self._queue)

    def add(self, flight: Flight) -> None:
        self._queue.append(flight)

    def clear(self) -> None:
        self._queue.clear()

    def oldest_stored(self, stored: Callable[[Flight], bool]) -> list[Flight]:
        """The oldest flights for which ``stored`` holds, up to the first for which it does not."""
        return list(itertools.takewhile(stored, self._queue))

    def drop(self, done: list[Flight]) -> None:
        """Forget ``done``, the oldest flights (as ``oldest_stored`` gave them)."""
        while self._queue and any(self._queue[0] is flight for flight in done):
            self._queue.popleft()

    def lowest_offsets(self) -> dict[int, int]:
        """Per raw-topic partition, the lowest offset a flight still holds."""
        lowest: dict[int, int] = {}
        for flight in self._queue:
            for partition, (low, _) in flight.spans.items():
                lowest[partition] = min(low, lowest.get(partition, low))
        return lowest

    def window(self, size: int) -> list[Flight]:
        """The ``size`` oldest flights (fewer when there are fewer)."""
        return list(itertools.islice(self._queue, size))

    def replace_oldest(self, count: int, flight: Flight) -> None:
        """The ``count`` oldest flights were published again, together, as ``flight``."""
        for _ in range(count):
            self._queue.popleft()
        self._queue.appendleft(flight)
