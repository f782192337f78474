"""What normalizing one raw callback can produce: events, and rejections with a precise reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ringback.normalized_event import NormalizedEvent

Event = NormalizedEvent


class Rejected(Exception):
    """Input that cannot be normalized; carries a machine-readable type and a human-readable message."""

    def __init__(self, reason_type: str, message: str) -> None:
        super().__init__(message)
        self.reason_type = reason_type
        self.message = message
        self.ids: dict[str, str] = {}

    def carrying(self, report: Any) -> Rejected:
        """The same rejection, noting the vendor ids still readable in the report it is about."""
        self.ids = readable_ids(report)
        return self


#: The vendor ids a rejected report may still carry, by every spelling a vendor uses (lower-cased), named
#: as the normalized event names them — so the dead letters of one message or call can be found by its id.
ID_FIELDS = {
    "sid": "sid",
    "callid": "call_id",
    "call_id": "call_id",
    "requestid": "request_id",
    "request_id": "request_id",
    "appid": "app_id",
    "app_id": "app_id",
    "sdkappid": "app_id",
    "confid": "conference_id",
}
MAX_ID_CHARS = 128


def readable_ids(report: Any) -> dict[str, str]:
    """The vendor ids that can still be read from a report the adapter rejected (text or whole numbers)."""
    if not isinstance(report, dict):
        return {}
    ids: dict[str, str] = {}
    for key, value in report.items():
        name = ID_FIELDS.get(key.lower()) if isinstance(key, str) else None
        if name is None or name in ids or isinstance(value, bool):
            continue
        if isinstance(value, (str, int)):
            text = str(value).strip()
            if text and len(text) <= MAX_ID_CHARS:
                ids[name] = text
    return ids


@dataclass(frozen=True, slots=True)
class Rejection:
    """One report (or the whole request, ``report_index`` None) that went to the dead-letter topic."""

    reason_type: str
    message: str
    report_index: int | None = None
    #: The vendor ids the rejected report still carries (see ``readable_ids``).
    ids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, error: Rejected, report_index: int | None = None, report: Any = None) -> Rejection:
        return cls(error.reason_type, error.message, report_index, readable_ids(report) or error.ids)


Outcome = Event | Rejection
