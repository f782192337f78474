"""The dead-letter message: one per request that could not be normalized in whole or in part.

Like the raw topic, the value is the vendor's bytes, untouched and only once, and the context travels
in headers, so a dead letter can be re-published to the raw topic as it is once the cause is fixed.
A request whose array holds 3,000 unreadable reports gives one dead letter, not 3,000 copies of its
body: the failures are listed (report index, reason, a bounded message) up to ``MAX_LISTED_FAILURES``,
and counted by reason in full.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from ringback.runtime.raw import RawCallback

H_FAILURE_TYPE = "failure_type"
H_FAILURE_MESSAGE = "failure_message"
H_REPORT_INDEX = "report_index"
H_FAILURES = "failures"
H_FAILURE_COUNTS = "failure_counts"
H_FAILED_REPORTS = "failed_reports"
H_REPORT_COUNT = "report_count"
H_BODY_SHA256 = "body_sha256"
H_SOURCE_TOPIC = "source_topic"
H_SOURCE_PARTITION = "source_partition"
H_SOURCE_OFFSET = "source_offset"
H_NORMALIZER_VERSION = "normalizer_version"
H_DEAD_LETTERED_AT_US = "dead_lettered_at_us"

WHOLE_REQUEST = -1  # report_index when the whole request failed, not one report inside it
#: Failures listed one by one per dead letter; beyond this only their counts by reason are kept.
MAX_LISTED_FAILURES = 100
#: Characters kept of each failure's message.
MAX_MESSAGE_CHARS = 300


@dataclass(frozen=True, slots=True)
class Failure:
    report_index: int  # WHOLE_REQUEST when the request as a whole could not be read
    failure_type: str
    message: str
    #: Vendor ids the failed report still carries, by the event's names (sid, call_id, request_id, …).
    ids: dict[str, str] = field(default_factory=dict)

    def bounded(self) -> Failure:
        if len(self.message) <= MAX_MESSAGE_CHARS:
            return self
        return Failure(self.report_index, self.failure_type, self.message[: MAX_MESSAGE_CHARS - 1] + "…", self.ids)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    raw: RawCallback
    #: The first ``MAX_LISTED_FAILURES`` failures, in report order, messages bounded.
    failures: tuple[Failure, ...]
    #: Every failure counted by its reason (also those not listed).
    failure_counts: dict[str, int]
    #: Reports in the request (0 when the request as a whole could not be read).
    report_count: int
    normalizer_version: str
    dead_lettered_at_us: int = 0

    @classmethod
    def of(
        cls, raw: RawCallback, failures: Sequence[Failure], report_count: int, normalizer_version: str
    ) -> DeadLetter:
        if not failures:
            raise ValueError("a dead letter needs at least one failure")
        return cls(
            raw=raw,
            failures=tuple(f.bounded() for f in failures[:MAX_LISTED_FAILURES]),
            failure_counts=dict(Counter(f.failure_type for f in failures)),
            report_count=report_count,
            normalizer_version=normalizer_version,
        )

    @property
    def failed_reports(self) -> int:
        return sum(self.failure_counts.values())

    @property
    def first(self) -> Failure:
        return self.failures[0]

    @property
    def failure_type(self) -> str:
        """The first failure's reason: the whole request's, or its first bad report's."""
        return self.first.failure_type

    @property
    def failure_message(self) -> str:
        return self.first.message

    @property
    def report_index(self) -> int:
        return self.first.report_index

    @property
    def ids(self) -> dict[str, list[str]]:
        """The listed failures' vendor ids by name, each value once: what finds this dead letter by id."""
        found: dict[str, list[str]] = {}
        for failure in self.failures:
            for name, value in failure.ids.items():
                values = found.setdefault(name, [])
                if value not in values:
                    values.append(value)
        return found

    @property
    def body_sha256(self) -> str:
        return hashlib.sha256(self.raw.body).hexdigest()

    def headers(self) -> list[tuple[str, bytes]]:
        at_us = self.dead_lettered_at_us or time.time_ns() // 1000
        return [
            *self.raw.headers(),
            (H_FAILURE_TYPE, self.failure_type.encode()),
            (H_FAILURE_MESSAGE, self.failure_message.encode("utf-8", "replace")),
            (H_REPORT_INDEX, str(self.report_index).encode()),
            (H_FAILURES, orjson.dumps([[f.report_index, f.failure_type, f.message, f.ids] for f in self.failures])),
            (H_FAILURE_COUNTS, orjson.dumps(self.failure_counts)),
            (H_REPORT_COUNT, str(self.report_count).encode()),
            (H_BODY_SHA256, self.body_sha256.encode()),
            (H_SOURCE_TOPIC, self.raw.topic.encode()),
            (H_SOURCE_PARTITION, str(self.raw.partition).encode()),
            (H_SOURCE_OFFSET, str(self.raw.offset).encode()),
            (H_NORMALIZER_VERSION, self.normalizer_version.encode()),
            (H_DEAD_LETTERED_AT_US, str(at_us).encode()),
        ]

    @classmethod
    def from_message(cls, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None) -> DeadLetter:
        found = {key: val.decode("utf-8", "replace") for key, val in (headers or ()) if val is not None}
        raw = RawCallback.from_message(
            found.get(H_SOURCE_TOPIC, ""),
            _int(found.get(H_SOURCE_PARTITION), -1),
            _int(found.get(H_SOURCE_OFFSET), -1),
            value,
            headers,
        )
        failures = _failures(found)
        return cls(
            raw=raw,
            failures=failures,
            failure_counts=_counts(found, failures),
            report_count=_int(found.get(H_REPORT_COUNT), 0),
            normalizer_version=found.get(H_NORMALIZER_VERSION, ""),
            dead_lettered_at_us=_int(found.get(H_DEAD_LETTERED_AT_US), 0),
        )


def _failures(found: dict[str, str]) -> tuple[Failure, ...]:
    """The listed failures; a message written before they were listed carries just its first one."""
    try:
        listed = tuple(_failure(*entry) for entry in orjson.loads(found[H_FAILURES]))
        if listed:
            return listed
    except (KeyError, ValueError, TypeError):
        pass
    return (
        Failure(
            _int(found.get(H_REPORT_INDEX), WHOLE_REQUEST),
            found.get(H_FAILURE_TYPE, "unknown"),
            found.get(H_FAILURE_MESSAGE, ""),
        ),
    )


def _failure(index: object, kind: object, message: object, ids: object = None) -> Failure:
    """One listed failure; those written before ids were noted have three fields."""
    readable = {str(name): str(value) for name, value in ids.items()} if isinstance(ids, dict) else {}
    return Failure(int(str(index)), str(kind), str(message), readable)


def _counts(found: dict[str, str], failures: tuple[Failure, ...]) -> dict[str, int]:
    try:
        counts = {str(kind): int(n) for kind, n in orjson.loads(found[H_FAILURE_COUNTS]).items()}
        if counts:
            return counts
    except (KeyError, ValueError, TypeError, AttributeError):
        pass
    return dict(Counter(f.failure_type for f in failures))


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default
