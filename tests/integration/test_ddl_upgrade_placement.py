"""A store whose copies of one event were split over partitions (a resend that moved the vendor's time,
stored before every copy took its first copy's occurred_at) is mended in place at the next start: one
row per event in ringback.events, the first arrival's, at any merge state; and only once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from tests.integration.test_ddl_upgrade import OLD_STORE, upgraded

pytestmark = pytest.mark.integration
SPLIT_COPIES_DDL = FIXTURES / "ddl_v3"  # the tables of schemas/clickhouse while copies kept their own occurred_at

SPLIT_UPGRADE = (
    OLD_STORE
    + r"""
def rows(sql):
    return client.query(sql).result_rows
columns = ["event_id", "event_type", "source", "route", "ingest_id", "report_index", "received_at", "occurred_at",
           "app_id", "charge", "duration_s", "status", "normalizer_version", "tenant"]
def at(day, hour=11):
    return datetime(2026, 12, day, hour, 19, 58, tzinfo=timezone.utc)
def cdr(event_id, ingest_id, received, occurred, charge, seconds):
    return [event_id, "voice.code_cdr", "cdr_push", "cdr-push", ingest_id, 0, received, occurred, "appM", charge,
            seconds, "answered", "v", "t"]
def record(ingest_id, received, occurred):
    return ["s-e2", "call.recording", "callback_call", "callback-call/record", ingest_id, 0, received, occurred,
            None, None, None, "recorded", "v", "t"]
for row in (  # one insert each, as they arrived: MONEY-2's resend moved etime two days; a time given late
    cdr("s-e1", "r-1", at(1), at(1), "0.06", 10),
    cdr("s-e1", "r-2", at(3), at(3), "999.99", 9999),
    cdr("s-e1", "r-3", at(3, 12), at(1, 13), "5", 50),
    record("r-4", at(1), None),
    record("r-5", at(2), at(2)),
    cdr("s-e3", "r-6", at(2), at(2), "0.10", 5),
):
    client.insert("ringback.event_copies", [row], column_names=columns)
before = rows("SELECT event_id, count() FROM ringback.events GROUP BY event_id ORDER BY event_id")
clickhouse.apply_ddl(client, new)
def state():
    return {
        "events": [[r[0], str(r[1]), r[2], str(r[3]), r[4]] for r in rows(
            "SELECT event_id, charge, ingest_id, occurred_at, reported_occurred_at IS NULL FROM ringback.events "
            "ORDER BY event_id")],
        "copies": rows("SELECT count() FROM ringback.event_copies")[0][0],
        "times": rows("SELECT count() FROM (SELECT DISTINCT event_id, occurred_at FROM ringback.event_copies)")[0][0],
        "own": sorted(str(r[0]) for r in rows(
            "SELECT reported_occurred_at FROM ringback.event_copies WHERE event_id = 's-e1'")),
        "keys": [[r[0], str(r[1])] for r in rows(
            "SELECT event_id, occurred_at FROM ringback.event_keys_v2 FINAL ORDER BY event_id")],
    }
after = state()
done_at = rows("SELECT done_at FROM ringback.store_upgrades")
clickhouse.apply_ddl(client, new)  # the next start: done already
again = rows("SELECT done_at FROM ringback.store_upgrades")
client.command("OPTIMIZE TABLE ringback.event_copies FINAL")
merged = state()
print(json.dumps({
    "before": [list(r) for r in before], "after": after, "merged": merged,
    "done": [str(r[0]) for r in done_at], "again": [str(r[0]) for r in again],
    "scratch": rows("SELECT count() FROM system.tables WHERE name = 'split_events_upgrade'")[0][0],
}))
"""
)


def test_copies_split_by_a_moved_time_are_mended_in_place_once(tmp_path: Path) -> None:
    result = upgraded(SPLIT_UPGRADE, tmp_path / "store", SPLIT_COPIES_DDL)
    assert result["before"] == [["s-e1", 3], ["s-e2", 2], ["s-e3", 1]]  # the bug: one event, several rows
    first = [
        ["s-e1", "0.060000", "r-1", "2026-12-01 11:19:58", 0],
        ["s-e2", "None", "r-4", "None", 1],
        ["s-e3", "0.100000", "r-6", "2026-12-02 11:19:58", 0],
    ]
    for state in (result["after"], result["merged"]):
        assert state["events"] == first  # one row each, the first arrival, its time the event's
        assert state["times"] == 3  # every copy of an event at its event's time
        assert state["keys"] == [["s-e1", "2026-12-01 11:19:58"], ["s-e2", "None"], ["s-e3", "2026-12-02 11:19:58"]]
    # a copy keeps the time it reported; the two moved copies, stored again in one insert, collapse there
    # into the earlier-received one, as a merge would
    assert result["after"]["own"] == ["2026-12-01 11:19:58", "2026-12-03 11:19:58"]
    assert result["after"]["copies"] == 5 and result["merged"]["copies"] == 3
    assert len(result["done"]) == 1 and result["again"] == result["done"]  # recorded once, not run again
    assert result["scratch"] == 0
