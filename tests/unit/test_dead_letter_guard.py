"""The dead-letter guard trips on a surge, not on the ordinary trickle of bad input."""

from __future__ import annotations

import pytest

from ringback.normalizer.guard import DeadLetterGuard, DeadLetterSurge


def test_ordinary_bad_input_does_not_trip() -> None:
    guard = DeadLetterGuard(ratio=0.5, window=100, min_outcomes=20)
    for _ in range(50):
        guard.check([False, False, True])  # a third dead-lettered: visible, not a surge


def test_a_surge_trips_once_the_window_has_enough_outcomes() -> None:
    guard = DeadLetterGuard(ratio=0.5, window=100, min_outcomes=20)
    guard.check([True] * 19)  # not enough evidence yet
    with pytest.raises(DeadLetterSurge, match="dead letters"):
        guard.check([True])


def test_old_outcomes_leave_the_window() -> None:
    guard = DeadLetterGuard(ratio=0.5, window=10, min_outcomes=10)
    guard.check([True] * 5 + [False] * 5)
    guard.check([False] * 10)  # the dead ones slid out
    guard.check([True] * 5)
    with pytest.raises(DeadLetterSurge):
        guard.check([True])


def test_ratio_one_disables_the_guard() -> None:
    DeadLetterGuard(ratio=1.0, window=10, min_outcomes=1).check([True] * 100)
