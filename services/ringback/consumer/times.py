"""Times of the topic's events as the kit counts them: microseconds since the epoch, and ISO 8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
MS_PER_S = 1000
US_PER_MS = 1000
US_PER_S = 1_000_000


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // MICROSECOND


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
