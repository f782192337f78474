"""Reading one vendor report's fields: tolerant of key spelling, strict about values.

A ``Fields`` reader looks keys up by any of several names, case-insensitively (``callId``, ``CallId``
and ``callid`` are one field), remembers which keys it consumed so that every other key lands in the
event's ``attributes``, and collects repairs made while reading (e.g. glued date-times).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from ringback.normalizer.amounts import decimal_amount, whole_number
from ringback.normalizer.event import as_text, leftover_attributes
from ringback.normalizer.times import local_to_utc, unix_millis_to_utc, unix_seconds_to_utc

_UNIX_SECONDS = re.compile(r"[0-9]{9,11}")
_UNIX_MILLIS = re.compile(r"[0-9]{12,14}")


class Fields:
    def __init__(self, report: dict[str, Any], source_timezone: str, repairs: list[str] | None = None) -> None:
        self.report = report
        self.source_timezone = source_timezone
        self.repairs: list[str] = list(repairs or [])
        self.used: set[str] = set()
        self._by_lower: dict[str, str] = {}
        for key in report:
            self._by_lower.setdefault(str(key).lower(), key)

    def key(self, *names: str) -> str | None:
        """The report's own key for the first of ``names`` it has (any letter case)."""
        for name in names:
            found = self._by_lower.get(name.lower())
            if found is not None:
                return found
        return None

    def raw(self, *names: str) -> Any:
        key = self.key(*names)
        if key is None:
            return None
        self.used.add(key)
        return self.report[key]

    def peek(self, *names: str) -> Any:
        """The value as ``raw`` reads it, leaving the key for ``attributes`` (e.g. for an event id)."""
        key = self.key(*names)
        return None if key is None else self.report[key]

    def text(self, *names: str) -> str | None:
        value = as_text(self.raw(*names))
        return None if value is None else value.strip()

    def local_time(self, *names: str) -> datetime | None:
        return local_to_utc(self.raw(*names), self.source_timezone, names[0], self.repairs)

    def any_time(self, *names: str) -> datetime | None:
        """Unix seconds, unix milliseconds or a local ``YYYY-MM-DD HH:MM:SS`` string."""
        value = self.text(*names)
        if value == "0":
            return None  # the platform's "this never happened"
        if value and _UNIX_SECONDS.fullmatch(value):
            return unix_seconds_to_utc(value, names[0], self.source_timezone)
        if value and _UNIX_MILLIS.fullmatch(value):
            return unix_millis_to_utc(value, names[0], self.source_timezone)
        return local_to_utc(value, self.source_timezone, names[0], self.repairs)

    def amount(self, *names: str) -> Decimal | None:
        return decimal_amount(self.raw(*names), names[0])

    def count(self, *names: str) -> int | None:
        return whole_number(self.raw(*names), names[0])

    def attributes(self) -> dict[str, str]:
        return leftover_attributes(self.report, self.used)
