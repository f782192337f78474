"""The dead-letter message: the original body untouched, with where it came from and why it failed.

Like the raw topic, the value is the vendor's bytes and the context travels in headers, so a
dead letter can be re-published to the raw topic as it is once the cause is fixed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ringback.runtime.raw import RawCallback

H_FAILURE_TYPE = "failure_type"
H_FAILURE_MESSAGE = "failure_message"
H_REPORT_INDEX = "report_index"
H_SOURCE_TOPIC = "source_topic"
H_SOURCE_PARTITION = "source_partition"
H_SOURCE_OFFSET = "source_offset"
H_NORMALIZER_VERSION = "normalizer_version"
H_DEAD_LETTERED_AT_US = "dead_lettered_at_us"

WHOLE_REQUEST = -1  # report_index when the whole request failed, not one report inside it


@dataclass(frozen=True, slots=True)
class DeadLetter:
    raw: RawCallback
    failure_type: str
    failure_message: str
    normalizer_version: str
    report_index: int = WHOLE_REQUEST
    dead_lettered_at_us: int = 0

    def headers(self) -> list[tuple[str, bytes]]:
        at_us = self.dead_lettered_at_us or time.time_ns() // 1000
        return [
            *self.raw.headers(),
            (H_FAILURE_TYPE, self.failure_type.encode()),
            (H_FAILURE_MESSAGE, self.failure_message.encode("utf-8", "replace")),
            (H_REPORT_INDEX, str(self.report_index).encode()),
            (H_SOURCE_TOPIC, self.raw.topic.encode()),
            (H_SOURCE_PARTITION, str(self.raw.partition).encode()),
            (H_SOURCE_OFFSET, str(self.raw.offset).encode()),
            (H_NORMALIZER_VERSION, self.normalizer_version.encode()),
            (H_DEAD_LETTERED_AT_US, str(at_us).encode()),
        ]

    @classmethod
    def from_message(cls, value: bytes | None, headers: tuple[tuple[str, bytes], ...] | list[tuple[str, bytes]] | None) -> "DeadLetter":
        found = {key: val.decode("utf-8", "replace") for key, val in (headers or ()) if val is not None}
        raw = RawCallback.from_message(
            found.get(H_SOURCE_TOPIC, ""),
            _int(found.get(H_SOURCE_PARTITION), -1),
            _int(found.get(H_SOURCE_OFFSET), -1),
            value,
            headers,
        )
        return cls(
            raw=raw,
            failure_type=found.get(H_FAILURE_TYPE, "unknown"),
            failure_message=found.get(H_FAILURE_MESSAGE, ""),
            normalizer_version=found.get(H_NORMALIZER_VERSION, ""),
            report_index=_int(found.get(H_REPORT_INDEX), WHOLE_REQUEST),
            dead_lettered_at_us=_int(found.get(H_DEAD_LETTERED_AT_US), 0),
        )


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default
