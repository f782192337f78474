"""Vendor time strings to aware UTC datetimes.

Only times of the years ``EARLIEST_YEAR``–``LATEST_YEAR`` are read, counted in the vendor's own zone:
``1990-01-01 00:00:00`` in Asia/Shanghai is read (it is 1989 in UTC), ``1989-12-31 23:59:59`` is not.
A unix time has no zone of its own; its year is the one in ``tz_name`` (the source zone) when given.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from ringback.normalizer.digits import ascii_digits, preview
from ringback.normalizer.outcome import Rejected

# "2016-02-02 11:19:36.000", "2015-10-17 08:03:04", and the glued "2016-02-0211:20:40.000"
# that real traffic (and the vendor's own document) contains.
_LOCAL = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})([ T]?)([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?")
REPAIR_GLUED_TIME = "separated_glued_date_time"
_UNIX_SECONDS = re.compile(r"[0-9]{1,11}")
_UNIX_MILLIS = re.compile(r"[0-9]{1,14}")  # 14 digits reach far past LATEST_YEAR
# Outside these years a time is a vendor bug, not a call: refused here rather than failing inserts later.
EARLIEST_YEAR = 1990
LATEST_YEAR = 2200
UTC_ZONE = "UTC"


@lru_cache(maxsize=32)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_to_utc(text: object, tz_name: str, field_name: str, repairs: list[str] | None = None) -> datetime | None:
    """Read a vendor local-time string in ``tz_name``; empty means absent; anything else unreadable is rejected.

    A date glued to its time (``2016-02-0211:20:40.000``) is read and, when ``repairs`` is given,
    recorded there as ``separated_glued_date_time:<field>``.
    """
    if text is None:
        return None
    value = str(text).strip()
    if not value:
        return None
    moment, glued = _local_moment(value, tz_name, field_name)
    if glued and repairs is not None:
        repairs.append(f"{REPAIR_GLUED_TIME}:{field_name}")
    return moment


#: A burst of callbacks repeats the same few seconds over and over; parsing each once is enough.
LOCAL_TIME_CACHE_SIZE = 8192


@lru_cache(maxsize=LOCAL_TIME_CACHE_SIZE)
def _local_moment(value: str, tz_name: str, field_name: str) -> tuple[datetime, bool]:
    """(UTC moment, whether the date was glued to the time); raises Rejected, which is not cached."""
    match = _LOCAL.fullmatch(value)
    if not match:
        raise Rejected("invalid_time", f"{field_name}: cannot read {preview(value)!r} as YYYY-MM-DD HH:MM:SS")
    year, month, day, separator, hour, minute, second, fraction = match.groups()
    micros = int((fraction or "0").ljust(6, "0"))
    if not EARLIEST_YEAR <= int(year) <= LATEST_YEAR:  # the year as written, in the vendor's zone
        raise _implausible(value, tz_name, field_name)
    try:
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=zone(tz_name)
        )
    except ValueError as exc:
        raise Rejected("invalid_time", f"{field_name}: {value!r} is not a real date/time ({exc})") from exc
    return local.astimezone(UTC), not separator


def unix_seconds_to_utc(text: object, field_name: str, tz_name: str = UTC_ZONE) -> datetime | None:
    """Read unix seconds given as a string or number; empty or "0" means absent. ``tz_name``: the zone
    whose calendar the year bound is counted in."""
    if text is None:
        return None
    value = str(text).strip()
    if not value or value == "0":
        return None
    if not _UNIX_SECONDS.fullmatch(value):
        raise Rejected("invalid_time", f"{field_name}: cannot read {preview(value)!r} as unix seconds")
    return _plausible(datetime.fromtimestamp(int(value), tz=UTC), value, tz_name, field_name)


def unix_millis_to_utc(text: object, field_name: str, tz_name: str = UTC_ZONE) -> datetime | None:
    """Read unix milliseconds; empty or "0" means absent. ``tz_name`` as for ``unix_seconds_to_utc``."""
    value = "" if text is None else str(text).strip()
    if not value or value == "0":
        return None
    if not ascii_digits(value):
        raise Rejected("invalid_time", f"{field_name}: cannot read {preview(value)!r} as unix milliseconds")
    if not _UNIX_MILLIS.fullmatch(value) or int(value) > UNIX_MILLIS_MAX:
        raise _implausible(value, tz_name, field_name)
    millis = int(value)
    moment = datetime.fromtimestamp(millis // 1000, tz=UTC).replace(microsecond=(millis % 1000) * 1000)
    return _plausible(moment, value, tz_name, field_name)


#: Past the end of LATEST_YEAR in every zone (UTC offsets stay within a day): bounds int() and
#: fromtimestamp() before the exact check in the source zone.
UNIX_MILLIS_MAX = int(datetime(LATEST_YEAR + 1, 1, 2, tzinfo=UTC).timestamp() * 1000)


def _plausible(moment: datetime, text: str, tz_name: str, field_name: str) -> datetime:
    if not EARLIEST_YEAR <= moment.astimezone(zone(tz_name)).year <= LATEST_YEAR:
        raise _implausible(text, tz_name, field_name)
    return moment


def _implausible(text: str, tz_name: str, field_name: str) -> Rejected:
    return Rejected(
        "invalid_time", f"{field_name}: {text!r} is outside the years {EARLIEST_YEAR}-{LATEST_YEAR} (in {tz_name})"
    )
