"""The dead-letter guard trips on a surge of bad requests, not on one big bad request or one resent body."""

from __future__ import annotations

from ringback.normalizer.guard import DeadLetterGuard, RequestVerdict

GOOD = RequestVerdict(bad=False, body_digest=b"")


def bad(n: int) -> RequestVerdict:
    return RequestVerdict(bad=True, body_digest=n.to_bytes(4, "big"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock | None = None, **overrides: float) -> DeadLetterGuard:
    options: dict[str, float] = {
        "ratio": 0.5,
        "window": 100,
        "min_requests": 20,
        "min_distinct": 5,
        "pause_s": 60.0,
        **overrides,
    }
    return DeadLetterGuard(clock=clock or Clock(), **options)  # type: ignore[arg-type]


def test_ordinary_bad_input_does_not_trip() -> None:
    g = guard()
    for i in range(50):
        assert g.judge([GOOD, GOOD, bad(i)]) is None  # a third dead-lettered: visible, not a surge


def test_a_surge_of_different_bad_requests_trips_once_the_window_has_enough_requests() -> None:
    g = guard()
    assert g.judge([bad(i) for i in range(19)]) is None  # not enough evidence yet
    trip = g.judge([bad(19)])
    assert trip is not None and g.tripped
    assert "20 of the last 20 requests" in trip.describe() and "20 different bodies" in trip.describe()


def test_one_body_resent_many_times_does_not_trip() -> None:
    g = guard()
    assert g.judge([bad(7)] * 500) is None  # one unreadable body, resent: one distinct body


def test_a_request_counts_once_however_many_reports_it_had() -> None:
    """The guard is fed one verdict per request; 1,000 unreadable reports in one request are one verdict."""
    g = guard(min_requests=2, min_distinct=1)
    assert g.judge([bad(1)]) is None
    assert g.judge([GOOD]) is None


def test_old_requests_leave_the_window() -> None:
    g = guard(window=10, min_requests=10, min_distinct=1)
    assert g.judge([bad(i) for i in range(5)] + [GOOD] * 5) is None
    assert g.judge([GOOD] * 10) is None  # the bad ones slid out
    assert g.judge([bad(i) for i in range(5)]) is None
    assert g.judge([bad(99)]) is not None


def test_a_tripped_guard_pauses_then_lets_the_held_poll_through_once_and_watches_afresh() -> None:
    clock = Clock()
    g = guard(clock, min_requests=5, min_distinct=2)
    held = [bad(i) for i in range(10)]
    assert g.judge(held) is not None
    clock.now += 30
    assert g.tripped and not g.pause_over()
    clock.now += 31
    assert g.pause_over()
    g.release()
    assert not g.tripped
    assert g.judge(held) is None  # the held poll goes through as it is (it is dead-lettered, not looped on)
    assert g.judge([bad(i) for i in range(100, 104)]) is None  # a fresh window needs min_requests again
    assert g.judge([bad(200)]) is not None


def test_ratio_one_disables_the_guard() -> None:
    g = guard(ratio=1.0, min_requests=1, min_distinct=1)
    assert g.judge([bad(i) for i in range(100)]) is None
