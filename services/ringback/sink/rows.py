"""The rows the sink writes besides events, by column name, and the dead letters it makes itself.

``ringback.dead_letters`` columns are named once here (``DEAD_LETTER_COLUMNS``); a row is a mapping
from those names, turned into columns only when inserted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from ringback import logs, metrics
from ringback.runtime.dead_letter import WHOLE_REQUEST, DeadLetter, Failure
from ringback.runtime.raw import RawCallback
from ringback.runtime.stream.backend import Message

DEAD_LETTER_COLUMNS = (
    "route",
    "ingest_id",
    "report_index",
    "received_at",
    "remote_addr",
    "content_type",
    "failure_type",
    "reason",
    "normalizer_version",
    "source_topic",
    "source_partition",
    "source_offset",
    "dead_lettered_at",
    "body",
    "report_count",
    "failed_reports",
    "failure_counts",
    "failures.report_index",
    "failures.failure_type",
    "failures.reason",
    "body_sha256",
    "tenant",
    "ids",
    "tenant_app_id",
    "replayed_at",
)
UNDECODABLE_EVENT = "undecodable_event"
UNSTORABLE_EVENT = "unstorable_event"
CLICKHOUSE_MAX_YEAR = 2299
EPOCH = datetime.fromtimestamp(0, tz=UTC)

log = logs.get(__name__)


def dead_letter_row(letter: DeadLetter) -> dict[str, Any]:
    """One ``ringback.dead_letters`` row per dead letter, that is per request."""
    raw = letter.raw
    dead_lettered_at_us = letter.dead_lettered_at_us or time.time_ns() // 1000
    return {
        "route": raw.route,
        "ingest_id": raw.ingest_id,
        "report_index": letter.report_index,
        "received_at": storable_time(raw.received_at_us),
        "remote_addr": raw.remote_addr,
        "content_type": raw.content_type,
        "failure_type": letter.failure_type,
        "reason": letter.failure_message,
        "normalizer_version": letter.normalizer_version,
        "source_topic": raw.topic,
        "source_partition": raw.partition,
        "source_offset": raw.offset,
        "dead_lettered_at": datetime.fromtimestamp(dead_lettered_at_us / 1_000_000, tz=UTC),
        "body": raw.body,
        "report_count": letter.report_count,
        "failed_reports": letter.failed_reports,
        "failure_counts": letter.failure_counts,
        "failures.report_index": [f.report_index for f in letter.failures],
        "failures.failure_type": [f.failure_type for f in letter.failures],
        "failures.reason": [f.message for f in letter.failures],
        "body_sha256": letter.body_sha256,
        "tenant": raw.tenant,
        "ids": letter.ids,
        "tenant_app_id": raw.tenant_app_id,
        "replayed_at": storable_time(raw.replayed_at_us) if raw.replayed_at_us else None,
    }


def storable_time(at_us: int) -> datetime:
    """A receive time from a message header as ClickHouse can store it (1970 when it is not one)."""
    try:
        moment = datetime.fromtimestamp(at_us / 1_000_000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return EPOCH
    return moment if moment.year <= CLICKHOUSE_MAX_YEAR else EPOCH


def dead_letter_columns(letters: Sequence[DeadLetter]) -> list[list[Any]]:
    rows = [dead_letter_row(letter) for letter in letters]
    return [[row[name] for row in rows] for name in DEAD_LETTER_COLUMNS]


def undecodable(message: Message, error: Exception) -> DeadLetter:
    """Never silently dropped: a normalized-topic message no one can read is kept beside the dead letters."""
    metrics.SINK_UNDECODABLE.inc()
    log.error(
        "undecodable normalized event",
        topic=message.topic,
        partition=message.partition.index,
        offset=message.offset,
        error=str(error),
    )
    raw = RawCallback.from_message(
        message.topic, message.partition.index, message.offset, message.value, message.headers
    )
    return DeadLetter.of(raw, [Failure(WHOLE_REQUEST, UNDECODABLE_EVENT, str(error))], 0, "")


def unstorable(message: Message, event: dict[str, Any], reason: str) -> DeadLetter:
    """An event ClickHouse refused for its values: kept in dead_letters as JSON, with where it came from."""
    metrics.SINK_UNSTORABLE.inc()
    log.error(
        "event ClickHouse cannot store, kept in dead_letters", event_id=event.get("event_id"), reason=reason[:300]
    )
    received = event.get("received_at")
    if not isinstance(received, datetime) or received.year > CLICKHOUSE_MAX_YEAR:
        received = EPOCH
    raw = RawCallback(
        route=str(event.get("route") or ""),
        ingest_id=str(event.get("ingest_id") or ""),
        received_at_us=int(received.timestamp() * 1_000_000),
        remote_addr="",
        content_type="",
        body=orjson.dumps(event, default=str),
        topic=message.topic,
        partition=message.partition.index,
        offset=message.offset,
        tenant=str(event.get("tenant") or ""),
    )
    index = event.get("report_index")
    failure = Failure(index if isinstance(index, int) else WHOLE_REQUEST, UNSTORABLE_EVENT, reason)
    return DeadLetter.of(raw, [failure], 1, str(event.get("normalizer_version") or ""))
