"""The two ways a step can fail to take what it was given, besides taking it."""

from __future__ import annotations


class RetryLater(Exception):
    """An infrastructure failure (broker or ClickHouse unreachable, a timeout): nothing of the poll
    counts as done; the driver rewinds to it and offers it again after a pause. ``what`` names the
    operation that failed (``publish``, ``insert``, …) for health and alarms."""

    def __init__(self, what: str, error: BaseException | str) -> None:
        super().__init__(f"{what}: {error}")
        self.what = what
        self.error = error if isinstance(error, str) else f"{type(error).__name__}: {error}"


class Hold(Exception):
    """The step refuses the poll for now (e.g. the dead-letter guard): the driver rewinds to it and
    fetches nothing until ``until`` (the step's clock), then offers it again."""

    def __init__(self, until: float, reason: str) -> None:
        super().__init__(reason)
        self.until = until
        self.reason = reason
