"""Whether a role is doing its job, and why not: what keeps failing, since when.

A failure that lasts (``alarm_after_s``) raises the alarm: the role's readiness turns red with the
reason, ``ringback_alarm{role,what}`` turns 1 and one error line is logged; recovery is logged too.
Short failures only show as ``ringback_retrying_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ringback import logs, metrics

log = logs.get(__name__)


@dataclass
class Failing:
    since: float
    error: str
    attempts: int = 1
    alarmed: bool = False


class Health:
    def __init__(self, role: str, alarm_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.role = role
        self.alarm_after_s = alarm_after_s
        self.clock = clock
        self.failing: dict[str, Failing] = {}
        self.last_success: dict[str, float] = {}  # wall clock, for `ringback status`

    def failed(self, what: str, error: str) -> None:
        now = self.clock()
        current = self.failing.get(what)
        if current is None:
            current = self.failing[what] = Failing(since=now, error=error)
        else:
            current.attempts += 1
            current.error = error
        seconds = now - current.since
        metrics.RETRYING_SECONDS.labels(self.role, what).set(seconds)
        if not current.alarmed and seconds >= self.alarm_after_s:
            current.alarmed = True
            metrics.ALARM.labels(self.role, what).set(1)
            log.error(
                "alarm: still failing",
                what=what,
                failing_for_s=round(seconds, 1),
                attempts=current.attempts,
                error=error,
            )

    def succeeded(self, what: str) -> None:
        self.last_success[what] = time.time()
        current = self.failing.pop(what, None)
        if current is None:
            return
        metrics.RETRYING_SECONDS.labels(self.role, what).set(0)
        if current.alarmed:
            metrics.ALARM.labels(self.role, what).set(0)
            log.warning(
                "recovered", what=what, failed_for_s=round(self.clock() - current.since, 1), attempts=current.attempts
            )

    def not_ready_reasons(self) -> list[str]:
        now = self.clock()
        return [
            f"cannot {what} for {now - failing.since:.0f}s ({failing.attempts} attempts): {failing.error}"
            for what, failing in self.failing.items()
            if failing.alarmed
        ]
