"""One clock for analysts: every view's day and hour are in billing_timezone (Asia/Shanghai by default),
with hour_utc and day_utc beside them, so sms_delivery_hourly's hours fall in daily_usage's days; the
DDL applied again with another zone (the sink's next start) moves the days."""

from __future__ import annotations

from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from ringback.runtime import clickhouse
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

SCHEMAS = REPO_ROOT / "schemas"
# 2026-12-01 23:30 and 2026-12-02 00:30 in Shanghai: one UTC day (the 1st), two Shanghai days.
BEFORE_MIDNIGHT_UTC = "2026-12-01 15:30:00"
AFTER_MIDNIGHT_UTC = "2026-12-01 16:30:00"


def _store_receipts(client: Client) -> None:
    for number, occurred in enumerate((BEFORE_MIDNIGHT_UTC, AFTER_MIDNIGHT_UTC)):
        client.command(
            "INSERT INTO ringback.event_copies (event_id, event_type, source, route, ingest_id, report_index,"
            " received_at, occurred_at, app_id, sid, to_e164, status, normalizer_version, tenant) VALUES"
            f" ('e{number}', 'sms.delivery_report', 'tencent.sms', 'tencent/sms', 'i{number}', 0,"
            f" '{occurred}', '{occurred}', 'app', 's{number}', '+8613800000000', 'delivered', 'test', 'acme')"
        )
    client.command(
        "INSERT INTO ringback.rate_lines VALUES ('2026-01-01 00:00:00', 1, '', '', 'sms.delivery_report',"
        " 'message', 0.05, 'CNY', 1, '2026-01-01')"
    )
    client.command("INSERT INTO ringback.rate_cards VALUES ('2026-01-01 00:00:00', 1, 'rates.toml', '')")


def _rows(client: Client, sql: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in client.query(sql).result_rows]


def test_days_and_hours_follow_the_billing_timezone_with_utc_companions(tmp_path: Path) -> None:
    client = clickhouse.connect(f"{clickhouse.CHDB_SCHEME}{tmp_path / 'store'}")
    try:
        clickhouse.apply_ddl(client, SCHEMAS)
        _store_receipts(client)

        assert _rows(
            client,
            "SELECT toString(hour), toString(day), toString(hour_utc), toString(day_utc), messages"
            " FROM ringback.sms_delivery_hourly ORDER BY hour",
        ) == [
            ("2026-12-01 23:00:00", "2026-12-01", "2026-12-01 15:00:00", "2026-12-01", 1),
            ("2026-12-02 00:00:00", "2026-12-02", "2026-12-01 16:00:00", "2026-12-01", 1),
        ]
        assert _rows(client, "SELECT toString(day), sms FROM ringback.daily_usage ORDER BY day") == [
            ("2026-12-01", 1),
            ("2026-12-02", 1),
        ]
        # The hourly view's days are the daily view's: the same SMS per day either way.
        assert _rows(
            client, "SELECT toString(day), sum(messages) FROM ringback.sms_delivery_hourly GROUP BY day ORDER BY day"
        ) == _rows(client, "SELECT toString(day), sms FROM ringback.daily_usage ORDER BY day")
        assert _rows(
            client, "SELECT sid, toString(day), toString(day_utc) FROM ringback.rated_events ORDER BY sid"
        ) == [
            ("s0", "2026-12-01", "2026-12-01"),
            ("s1", "2026-12-02", "2026-12-01"),
        ]
        assert _rows(client, "SELECT toString(day), events FROM ringback.rated_usage ORDER BY day") == [
            ("2026-12-01", 1),
            ("2026-12-02", 1),
        ]

        clickhouse.apply_ddl(client, SCHEMAS, billing_timezone="UTC")  # the sink's next start, in UTC

        assert _rows(
            client,
            "SELECT toString(hour), toString(day), toString(hour_utc), messages"
            " FROM ringback.sms_delivery_hourly ORDER BY hour",
        ) == [
            ("2026-12-01 15:00:00", "2026-12-01", "2026-12-01 15:00:00", 1),
            ("2026-12-01 16:00:00", "2026-12-01", "2026-12-01 16:00:00", 1),
        ]
        assert _rows(client, "SELECT toString(day), sms FROM ringback.daily_usage") == [("2026-12-01", 2)]
        assert _rows(client, "SELECT toString(day), events FROM ringback.rated_usage") == [("2026-12-01", 2)]
    finally:
        client.close()


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/New_York"])
def test_billing_today_is_today_in_the_billing_zone(tmp_path: Path, zone: str) -> None:
    """What the dashboard's billing panel compares with: today's date, start and end in the store's zone
    (Kiritimati and Pago Pago are 25 hours apart: their todays are never the same date)."""
    client = clickhouse.connect(f"{clickhouse.CHDB_SCHEME}{tmp_path / 'store'}")
    try:
        clickhouse.apply_ddl(client, SCHEMAS, billing_timezone=zone)
        (row,) = _rows(
            client,
            "SELECT billing_timezone, day = toDate(now(), %(zone)s), toDate(starts_at, %(zone)s) = day,"
            " starts_at <= now() AND now() < ends_at, toDate(ends_at, %(zone)s) = day + 1,"
            " toHour(starts_at, %(zone)s) + toMinute(starts_at, %(zone)s), dateDiff('hour', starts_at, ends_at)"
            " FROM ringback.billing_today".replace("%(zone)s", f"'{zone}'"),
        )
        assert row[:6] == (zone, 1, 1, 1, 1, 0)
        assert row[6] in (23, 24, 25)
    finally:
        client.close()
