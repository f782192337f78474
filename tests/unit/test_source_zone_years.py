"""The 1990–2200 bound on vendor times counts years in the vendor's own zone, not in UTC.

The regression: ``1990-01-01 00:00:00`` in Asia/Shanghai (1989-12-31 16:00 in UTC) was refused, and
``2201-01-01 00:00:00`` there (2200-12-31 16:00 in UTC) was read; ``0001-01-01 00:00:00`` failed with
an OverflowError (an ``internal_error`` dead letter) instead of ``invalid_time``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ringback.normalizer.adapters import registry
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejected, Rejection
from ringback.normalizer.step import normalize_message
from ringback.normalizer.times import EARLIEST_YEAR, LATEST_YEAR, local_to_utc, unix_millis_to_utc, unix_seconds_to_utc
from ringback.runtime.avro import EventCodec
from ringback.runtime.raw import RawCallback
from tests.conftest import REPO_ROOT

SHANGHAI = "Asia/Shanghai"  # UTC+8
LOS_ANGELES = "America/Los_Angeles"  # UTC-8 in winter
CTX = Context(blank_event=EventCodec.from_dir(REPO_ROOT / "schemas").blank_event(), source_timezone=SHANGHAI)

FIRST_SHANGHAI_MOMENT = datetime(1989, 12, 31, 16, tzinfo=UTC)  # 1990-01-01 00:00 in Shanghai
FIRST_SHANGHAI_SECOND = int(FIRST_SHANGHAI_MOMENT.timestamp())
LAST_LOS_ANGELES_MOMENT = datetime(2201, 1, 1, 7, 59, 59, tzinfo=UTC)  # 2200-12-31 23:59:59 in Los Angeles


def refused(read: object, *args: object) -> str:
    with pytest.raises(Rejected) as caught:
        read(*args)  # type: ignore[operator]
    assert caught.value.reason_type == "invalid_time"
    return caught.value.message


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("1990-01-01 00:00:00", SHANGHAI, FIRST_SHANGHAI_MOMENT),
        ("1990-01-01 00:00:00.000", SHANGHAI, FIRST_SHANGHAI_MOMENT),
        ("2200-12-31 23:59:59", LOS_ANGELES, LAST_LOS_ANGELES_MOMENT),
        ("2200-12-31 23:59:59", SHANGHAI, datetime(2200, 12, 31, 15, 59, 59, tzinfo=UTC)),
        ("1990-01-01 00:00:00", LOS_ANGELES, datetime(1990, 1, 1, 8, tzinfo=UTC)),
    ],
)
def test_the_first_and_last_moments_of_the_years_in_the_vendors_zone_are_read(
    text: str, zone: str, expected: datetime
) -> None:
    assert local_to_utc(text, zone, "stime") == expected


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("1989-12-31 23:59:59", SHANGHAI),
        ("2201-01-01 00:00:00", SHANGHAI),  # still 2200 in UTC
        ("1989-12-31 23:59:59", LOS_ANGELES),  # already 1990 in UTC
        ("2201-01-01 00:00:00", LOS_ANGELES),
        ("0001-01-01 00:00:00", SHANGHAI),  # before UTC's first year: was an OverflowError
        ("9999-12-31 23:59:59", LOS_ANGELES),  # after UTC's last year
    ],
)
def test_times_outside_the_years_in_the_vendors_zone_are_refused(text: str, zone: str) -> None:
    message = refused(local_to_utc, text, zone, "stime")
    assert f"{EARLIEST_YEAR}-{LATEST_YEAR}" in message and zone in message and "stime" in message


def test_unix_times_count_the_year_in_the_zone_they_are_given() -> None:
    assert unix_seconds_to_utc(str(FIRST_SHANGHAI_SECOND), "time", SHANGHAI) == FIRST_SHANGHAI_MOMENT
    assert unix_millis_to_utc(str(FIRST_SHANGHAI_SECOND * 1000), "time", SHANGHAI) == FIRST_SHANGHAI_MOMENT
    refused(unix_seconds_to_utc, str(FIRST_SHANGHAI_SECOND - 1), "time", SHANGHAI)
    refused(unix_millis_to_utc, str(FIRST_SHANGHAI_SECOND * 1000 - 1), "time", SHANGHAI)
    # Without a zone, the year is UTC's: that moment is still 1989 there.
    refused(unix_seconds_to_utc, str(FIRST_SHANGHAI_SECOND), "time")
    last = int(LAST_LOS_ANGELES_MOMENT.timestamp())
    assert unix_millis_to_utc(str(last * 1000 + 999), "t", LOS_ANGELES) == LAST_LOS_ANGELES_MOMENT.replace(
        microsecond=999_000
    )
    refused(unix_millis_to_utc, str(last * 1000 + 1000), "t", LOS_ANGELES)
    refused(unix_millis_to_utc, str(last * 1000), "t")  # 2201 in UTC


def raw_of(route: str, body: object) -> RawCallback:
    return RawCallback(
        route=route,
        ingest_id="y",
        received_at_us=1_763_700_000_000_000,
        remote_addr="",
        content_type="",
        body=orjson.dumps(body),
    )


CDR = {"requestid": "r", "appid": "a", "fid": "2", "tel": "13800000001", "duration": "1", "oriamount": "0.1"}


@pytest.mark.parametrize(
    ("route", "body", "field", "expected"),
    [
        ("cdr-push", {"cdr": [{**CDR, "stime": "1990-01-01 00:00:00"}]}, "answered_at", FIRST_SHANGHAI_MOMENT),
        (
            "callback-call/hangup",
            {"callId": "c", "endCallTime": str(FIRST_SHANGHAI_SECOND)},
            "ended_at",
            FIRST_SHANGHAI_MOMENT,
        ),
        (
            "callback-call/hangup",
            {"callId": "c", "endCallTime": str(FIRST_SHANGHAI_SECOND * 1000)},
            "ended_at",
            FIRST_SHANGHAI_MOMENT,
        ),
        (
            "tencent/voicecode",
            {"voicecode_callback": {"callid": "c", "result": "0", "start_calltime": str(FIRST_SHANGHAI_SECOND)}},
            "started_at",
            FIRST_SHANGHAI_MOMENT,
        ),
        (
            "tencent/sms-reply",
            {"mobile": "13800138000", "nationcode": "86", "sign": "s", "text": "t", "time": FIRST_SHANGHAI_SECOND},
            "occurred_at",
            FIRST_SHANGHAI_MOMENT,
        ),
    ],
)
def test_every_route_counts_years_in_the_source_zone(route: str, body: object, field: str, expected: datetime) -> None:
    (event,) = normalize_message(raw_of(route, body), registry(), CTX)
    assert not isinstance(event, Rejection), event
    assert event[field] == expected


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("cdr-push", {"cdr": [{**CDR, "stime": "1989-12-31 23:59:59"}]}),
        ("cdr-push", {"cdr": [{**CDR, "stime": "0001-01-01 00:00:00"}]}),
        ("callback-call/hangup", {"callId": "c", "endCallTime": str(FIRST_SHANGHAI_SECOND - 1)}),
        (
            "tencent/voicecode",
            {"voicecode_callback": {"callid": "c", "result": "0", "start_calltime": str(FIRST_SHANGHAI_SECOND - 1)}},
        ),
    ],
)
def test_every_route_refuses_years_outside_the_bound_in_the_source_zone(route: str, body: object) -> None:
    (outcome,) = normalize_message(raw_of(route, body), registry(), CTX)
    assert isinstance(outcome, Rejection) and outcome.reason_type == "invalid_time", outcome
