"""What normalizing one raw callback can produce: events, and rejections with a precise reason."""

from __future__ import annotations

from dataclasses import dataclass
from ringback.normalized_event import NormalizedEvent

Event = NormalizedEvent


class Rejected(Exception):
    """Input that cannot be normalized; carries a machine-readable type and a human-readable message."""

    def __init__(self, reason_type: str, message: str) -> None:
        super().__init__(message)
        self.reason_type = reason_type
        self.message = message


@dataclass(frozen=True, slots=True)
class Rejection:
    """One report (or the whole request, ``report_index`` None) that went to the dead-letter topic."""

    reason_type: str
    message: str
    report_index: int | None = None

    @classmethod
    def of(cls, error: Rejected, report_index: int | None = None) -> "Rejection":
        return cls(error.reason_type, error.message, report_index)


Outcome = Event | Rejection
