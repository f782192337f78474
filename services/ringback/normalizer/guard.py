"""The dead-letter guard: a bad deploy must not quietly dead-letter everything.

It watches the share of dead letters among the most recent outcomes; past the configured ratio the
normalizer stops with a clear error *before* publishing or committing the poll that tripped it, so
nothing is lost and the input waits on the raw topic for a fixed deploy.
"""

from __future__ import annotations

from collections import deque


class DeadLetterSurge(RuntimeError):
    """Too large a share of recent input went to the dead-letter topic."""


class DeadLetterGuard:
    def __init__(self, ratio: float, window: int, min_outcomes: int) -> None:
        self.ratio = ratio
        self.min_outcomes = min_outcomes
        self.recent: deque[bool] = deque(maxlen=max(1, window))  # True = dead letter
        self.dead_in_window = 0

    def check(self, outcomes_are_dead: list[bool]) -> None:
        """Record one poll's outcomes; raise DeadLetterSurge if the window is now over the ratio."""
        if self.ratio >= 1:
            return
        for dead in outcomes_are_dead:
            if len(self.recent) == self.recent.maxlen and self.recent[0]:
                self.dead_in_window -= 1
            self.recent.append(dead)
            self.dead_in_window += dead
        if len(self.recent) >= self.min_outcomes and self.dead_in_window > self.ratio * len(self.recent):
            raise DeadLetterSurge(
                f"{self.dead_in_window} of the last {len(self.recent)} outcomes were dead letters "
                f"(limit {self.ratio:.0%}); stopping before publishing or committing this poll. "
                "Look at ringback.dead_letters / the dead-letter topic for the reason, fix the deploy or the input, then restart."
            )
