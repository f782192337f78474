"""Pipeline progress: how an edge learns that what it journaled is stored, so it may let go of it.

Two kinds of small messages travel on the progress topic:

- a **claim**, from a normalizer once every output of a poll is acknowledged (and before its commit):
  ``raw`` records ``[first, next)`` of a raw-topic partition have all their outputs (events, dead
  letters) on the output topics below the offsets in ``outputs``. It holds whoever wrote it, whatever
  happens later to the commit: those outputs exist.
- a **stored** mark, from a sink after a commit that followed an insert: every record below
  ``stored[topic:partition]`` of that partition is in ClickHouse.

A claim is *settled* once every offset in its ``outputs`` is stored. A raw-topic record the edge
published is stored once a settled claim covers its offset. Offsets are positions in one broker's
topics: when the broker starts afresh (the embedded broker after a crash) they mean nothing any more,
and the edge forgets everything it learned and publishes everything it has not let go of again.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

CLAIM = "normalized"
STORED = "stored"
TopicPartitionKey = str  # "<topic>:<partition>"


def key(topic: str, partition: int) -> TopicPartitionKey:
    return f"{topic}:{partition}"


def claim_message(raw_topic: str, ranges: dict[int, tuple[int, int]], outputs: dict[TopicPartitionKey, int]) -> bytes:
    return orjson.dumps(
        {
            "kind": CLAIM,
            "topic": raw_topic,
            "raw": [[p, first, nxt] for p, (first, nxt) in sorted(ranges.items())],
            "outputs": outputs,
        }
    )


def stored_message(stored: dict[TopicPartitionKey, int]) -> bytes:
    return orjson.dumps({"kind": STORED, "stored": stored})


@dataclass(frozen=True)
class Claim:
    partition: int
    first: int
    next: int
    outputs: tuple[tuple[TopicPartitionKey, int], ...]


@dataclass
class Intervals:
    """Disjoint, sorted half-open intervals of offsets."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)

    def add(self, first: int, nxt: int) -> None:
        if nxt <= first:
            return
        i = bisect.bisect_left(self.ends, first)  # first interval that ends at or after `first`
        j = bisect.bisect_right(self.starts, nxt)  # intervals starting after `nxt` stay apart
        if i < j:
            first, nxt = min(first, self.starts[i]), max(nxt, self.ends[j - 1])
        self.starts[i:j] = [first]
        self.ends[i:j] = [nxt]

    def covers(self, first: int, last: int) -> bool:
        """True when every offset in [first, last] lies in one interval."""
        i = bisect.bisect_right(self.starts, first) - 1
        return i >= 0 and self.ends[i] > last

    def forget_below(self, offset: int) -> None:
        """Drop intervals that end at or before ``offset`` (nobody asks about them any more)."""
        i = bisect.bisect_right(self.ends, offset)
        del self.starts[:i], self.ends[:i]


class StoredWatermark:
    """What the edge knows of the pipeline's progress on one raw topic, built from progress messages."""

    def __init__(self, raw_topic: str) -> None:
        self.raw_topic = raw_topic
        self.stored: dict[TopicPartitionKey, int] = {}
        self.pending: list[Claim] = []
        self.settled: dict[int, Intervals] = {}

    def reset(self) -> None:
        self.stored.clear()
        self.pending.clear()
        self.settled.clear()

    def take(self, message: bytes) -> None:
        """Apply one progress message (anything unreadable or about another raw topic is ignored).

        A claim can settle only itself (what is stored did not change), so it costs its own ranges; only
        a stored mark that moved looks at every pending claim: during a store's outage claims pile up,
        and each one looking at all the others made the edge's loop quadratic in them."""
        try:
            data = orjson.loads(message)
            if data.get("kind") == STORED:
                moved = False
                for name, offset in data["stored"].items():
                    if int(offset) > self.stored.get(str(name), -1):
                        self.stored[str(name)] = int(offset)
                        moved = True
                if moved:
                    self.pending = [claim for claim in self.pending if not self._settled(claim)]
            elif data.get("kind") == CLAIM and data.get("topic") == self.raw_topic:
                outputs = tuple((str(name), int(offset)) for name, offset in data["outputs"].items())
                claims = [Claim(int(partition), int(first), int(nxt), outputs) for partition, first, nxt in data["raw"]]
                self.pending += [claim for claim in claims if not self._settled(claim)]
        except (ValueError, KeyError, TypeError, AttributeError):
            return

    def _settled(self, claim: Claim) -> bool:
        """Whether every output of ``claim`` is stored; if so, its raw range is added to the settled ones."""
        if all(self.stored.get(name, -1) >= offset for name, offset in claim.outputs):
            self.settled.setdefault(claim.partition, Intervals()).add(claim.first, claim.next)
            return True
        return False

    def is_stored(self, partition: int, first: int, last: int) -> bool:
        """Every raw record with an offset in [first, last] of ``partition`` is stored."""
        intervals = self.settled.get(partition)
        return intervals is not None and intervals.covers(first, last)

    def forget_below(self, lowest: dict[int, int]) -> None:
        """Nothing below ``lowest[partition]`` will be asked about again."""
        for partition, offset in lowest.items():
            if partition in self.settled:
                self.settled[partition].forget_below(offset)
        self.pending = [c for c in self.pending if c.next > lowest.get(c.partition, -1)]


def offsets_by_partition(acks: Iterable[tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """(partition, offset) acknowledgements -> partition -> (lowest, highest) offset."""
    spans: dict[int, tuple[int, int]] = {}
    for partition, offset in acks:
        low, high = spans.get(partition, (offset, offset))
        spans[partition] = (min(low, offset), max(high, offset))
    return spans
