"""Progress marks: a raw-topic record counts as stored only when a claim covers it and the sink stored
every output that claim names."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from ringback.runtime.progress import (
    Intervals,
    StoredWatermark,
    claim_message,
    key,
    offsets_by_partition,
    stored_message,
)

RAW = "raw"
NORMALIZED = "normalized"
DLQ = "dlq"


def test_a_claim_counts_once_every_output_it_names_is_stored() -> None:
    mark = StoredWatermark(RAW)
    mark.take(claim_message(RAW, {0: (0, 10)}, {key(NORMALIZED, 0): 25, key(DLQ, 1): 3}))
    assert not mark.is_stored(0, 0, 9)
    mark.take(stored_message({key(NORMALIZED, 0): 25}))
    assert not mark.is_stored(0, 0, 9)  # the dead letters of those records are not stored yet
    mark.take(stored_message({key(DLQ, 1): 2}))
    assert not mark.is_stored(0, 0, 9)
    mark.take(stored_message({key(DLQ, 1): 3}))
    assert mark.is_stored(0, 0, 9)
    assert not mark.is_stored(0, 0, 10) and not mark.is_stored(1, 0, 0)


def test_stored_marks_only_move_forward_and_order_does_not_matter() -> None:
    mark = StoredWatermark(RAW)
    mark.take(stored_message({key(NORMALIZED, 0): 40}))
    mark.take(stored_message({key(NORMALIZED, 0): 5}))  # an older mark, arriving late
    mark.take(claim_message(RAW, {2: (100, 120)}, {key(NORMALIZED, 0): 30}))
    assert mark.is_stored(2, 100, 119)


def test_claims_about_another_raw_topic_or_unreadable_messages_change_nothing() -> None:
    mark = StoredWatermark(RAW)
    mark.take(claim_message("other.raw", {0: (0, 10)}, {}))
    mark.take(b"not json")
    mark.take(b'{"kind": "normalized", "topic": "raw", "raw": "nonsense"}')
    assert not mark.is_stored(0, 0, 0)


def test_adjacent_claims_join_so_a_span_across_polls_is_covered() -> None:
    mark = StoredWatermark(RAW)
    for first in range(0, 100, 10):
        mark.take(claim_message(RAW, {0: (first, first + 10)}, {}))
    assert mark.is_stored(0, 5, 95)
    mark.forget_below({0: 50})
    assert mark.is_stored(0, 50, 99)  # an interval reaching past the bound stays whole
    mark.forget_below({0: 100})
    assert not mark.is_stored(0, 50, 99)  # nobody asks below 100 any more: it is gone


def test_a_reset_forgets_offsets_of_the_old_broker() -> None:
    mark = StoredWatermark(RAW)
    mark.take(claim_message(RAW, {0: (0, 1000)}, {}))
    mark.reset()
    assert not mark.is_stored(0, 0, 10)  # the new broker's offset 0 is another record


def test_offsets_by_partition() -> None:
    assert offsets_by_partition([(0, 5), (1, 2), (0, 3), (0, 9)]) == {0: (3, 9), 1: (2, 2)}


@given(
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 40)), max_size=30), st.integers(0, 240), st.integers(0, 20)
)
def test_intervals_cover_exactly_the_union(ranges: list[tuple[int, int]], first: int, width: int) -> None:
    intervals = Intervals()
    covered: set[int] = set()
    for start, length in ranges:
        intervals.add(start, start + length)
        covered |= set(range(start, start + length))
    want = all(o in covered for o in range(first, first + width + 1))
    assert intervals.covers(first, first + width) == want
    # disjoint, sorted, not touching
    assert all(a < b for a, b in zip(intervals.ends, intervals.starts[1:], strict=False))


def test_claims_piling_up_while_the_store_is_away_each_cost_their_own_ranges() -> None:
    """A sink away for minutes leaves tens of thousands of claims pending at every edge; each new claim
    looking at all of them made the edge's loop quadratic (~50 ms a claim at 50,000 pending here). A claim
    costs its own ranges; the stored mark that comes back settles them all."""
    mark = StoredWatermark(RAW)
    outputs = {key(NORMALIZED, 0): 1_000_000}
    mark.take(claim_message(RAW, dict.fromkeys(range(1, 50001), (0, 10)), outputs))  # the backlog, in one message
    started = time.process_time()
    for n in range(2_000):
        mark.take(claim_message(RAW, {0: (10 * n, 10 * n + 10)}, outputs))
        if n % 100 == 99:
            assert time.process_time() - started < 3.0  # ~0.02 s for all 2,000 here; quadratic: ~5 s a round
    assert not mark.is_stored(0, 0, 19_999) and not mark.is_stored(50_000, 0, 9)
    mark.take(stored_message(outputs))
    assert mark.is_stored(0, 0, 19_999) and mark.is_stored(1, 0, 9) and mark.is_stored(50_000, 0, 9)
    assert not mark.pending
