"""The edge's in-flight bookkeeping (journal mode) stays exact, and cheap however many flights a
stalled store leaves behind: a sink away for minutes leaves hundreds of thousands of them, and letting
go of them all at once must not stop the edge's event loop."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from ringback.edge.flights import Flight, Flights
from ringback.edge.journal import Position

spans = st.dictionaries(
    st.integers(min_value=0, max_value=3),
    st.tuples(st.integers(min_value=0, max_value=50), st.integers(min_value=0, max_value=5)).map(
        lambda low_width: (low_width[0], low_width[0] + low_width[1])
    ),
    min_size=1,
    max_size=3,
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(min_value=1, max_value=500), spans),
        st.tuples(st.just("drop"), st.integers(min_value=0, max_value=6), st.none()),
        st.tuples(st.just("replace"), st.integers(min_value=1, max_value=4), spans),
        st.tuples(st.just("clear"), st.none(), st.none()),
    ),
    max_size=60,
)


def naive_lowest(flights: list[Flight]) -> dict[int, int]:
    lowest: dict[int, int] = {}
    for flight in flights:
        for partition, (low, _) in flight.spans.items():
            lowest[partition] = min(low, lowest.get(partition, low))
    return lowest


@settings(max_examples=300, deadline=None)
@given(operations)
def test_records_and_lowest_offsets_match_the_flights_held(
    ops: list[tuple[str, int | None, dict[int, tuple[int, int]] | None]],
) -> None:
    flights, model = Flights(), []
    for position, (kind, number, span) in enumerate(ops):
        if kind == "add":
            assert number is not None and span is not None
            flight = Flight(Position(0, position), number, span)
            flights.add(flight)
            model.append(flight)
        elif kind == "drop":
            assert number is not None
            done = flights.oldest_stored(lambda _: True)[:number]
            flights.drop(done)
            model = model[len(done) :]
        elif kind == "replace" and model:
            assert number is not None and span is not None
            count = min(number, len(model))
            again = Flight(model[count - 1].end, sum(f.records for f in model[:count]), span)
            flights.replace_oldest(count, again)
            model = [again, *model[count:]]
        elif kind == "clear":
            flights.clear()
            model = []
        assert list(flights) == model
        assert flights.records == sum(f.records for f in model)
        assert flights.lowest_offsets() == naive_lowest(model)


def test_a_drop_stops_at_the_first_flight_that_is_no_longer_the_oldest() -> None:
    """The flights were cleared (the broker started afresh) while the journal let go of them."""
    flights = Flights()
    old = [Flight(Position(0, i), 1, {0: (i, i)}) for i in range(3)]
    for flight in old:
        flights.add(flight)
    done = flights.oldest_stored(lambda _: True)
    flights.clear()
    new = Flight(Position(0, 9), 2, {1: (0, 1)})
    flights.add(new)
    flights.drop(done)
    assert list(flights) == [new] and flights.records == 2 and flights.lowest_offsets() == {1: 0}


def test_letting_go_of_many_flights_at_once_costs_each_flight_once() -> None:
    """200,000 flights (a sink away for ~15 minutes at 5,000 callbacks/s in batches of 20): dropping them
    all, reading ``records`` and ``lowest_offsets`` between, take a fraction of a second of CPU; dropping
    by searching ``done`` for each flight took minutes (51 s for 40,000), with the edge's loop stopped."""
    flights = Flights()
    for i in range(200_000):
        flights.add(Flight(Position(0, i), 20, {i % 4: (20 * i, 20 * i + 19)}))
    started = time.process_time()
    done = flights.oldest_stored(lambda _: True)
    for start in range(0, len(done), 50_000):
        flights.drop(done[start : start + 50_000])
        assert flights.records == 20 * (len(done) - start - 50_000)
        flights.lowest_offsets()
        assert time.process_time() - started < 10.0  # linear: ~0.3 s in all here; quadratic: ~80 s a round
    assert len(flights) == 0 and flights.lowest_offsets() == {}
