"""The DDL upgrades a store that an earlier version created, keeping its rows (columns added, the
ledger's sort key extended, the ingests views replaced, the events moved to event_copies and then to
partitions by day), and applying it again changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, REPO_ROOT

pytestmark = pytest.mark.integration
FIRST_VERSION_DDL = FIXTURES / "ddl_v1"  # schemas/clickhouse as the first release shipped it
MONTHLY_DDL = FIXTURES / "ddl_v2"  # the tables of schemas/clickhouse while event_copies was partitioned by month

#: A store made by an earlier version: its DDL applied as that version applied it (argv: store, old DDL, new DDL).
OLD_STORE = r"""
import json, sys
from datetime import datetime, timezone
from pathlib import Path
from ringback.runtime import clickhouse

store, old, new = sys.argv[1:4]
client = clickhouse.connect(f"chdb://{store}")
for statement in clickhouse.sql_statements(Path(old)):
    client.command(statement.replace("{on_cluster}", ""))
"""

UPGRADE = (
    OLD_STORE
    + r"""
now = datetime(2026, 11, 21, 1, 0, tzinfo=timezone.utc)
client.insert("ringback.ledger", [[now, "cdr-push", "edge.accepted", "i", 1, 7]],
              column_names=["hour", "route", "stage", "instance", "seq", "count"])
client.insert("ringback.events",
              [["old-e1", "call.cdr", "cdr_push", "cdr-push", "old-req", 0, now, now, "app", "1.50", "x", "v"]],
              column_names=["event_id", "event_type", "source", "route", "ingest_id", "report_index", "received_at",
                            "occurred_at", "app_id", "charge", "status", "normalizer_version"])
client.insert("ringback.dead_letters",
              [["cdr-push", "old-1", -1, now, "", "", "invalid_json", "x", "v", "t", 0, 1, now, "{"]],
              column_names=["route", "ingest_id", "report_index", "received_at", "remote_addr", "content_type",
                            "failure_type", "reason", "normalizer_version", "source_topic", "source_partition",
                            "source_offset", "dead_lettered_at", "body"])
first = clickhouse.apply_ddl(client, new)
second = clickhouse.apply_ddl(client, new)
def rows(sql):
    return client.query(sql).result_rows
def columns(table):
    sql = f"SELECT name FROM system.columns WHERE database = 'ringback' AND table = '{table}' ORDER BY position"
    return [r[0] for r in rows(sql)]
client.insert("ringback.dead_letters", [["cdr-push", "new-1", -1, now, "acme"]],
              column_names=["route", "ingest_id", "report_index", "received_at", "tenant"])
print(json.dumps({
    "statements": [first, second],
    "events": columns("event_copies"), "dead_letters": columns("dead_letters"),
    "events_engine": rows("SELECT engine FROM system.tables WHERE database = 'ringback' AND name = 'events'")[0][0],
    "old_events": [list(r) for r in rows("SELECT event_id, toString(charge), app_id FROM ringback.events")],
    "backup": rows("SELECT count() FROM ringback.events_v1_backup")[0][0],
    "old_ingests": rows("SELECT count() FROM ringback.ingests WHERE ingest_id = 'old-req'")[0][0],
    "ledger": columns("ledger"), "ingests": columns("ingests"),
    "ledger_key": rows("SELECT sorting_key FROM system.tables WHERE database = 'ringback' AND name = 'ledger'")[0][0],
    "views": sorted(r[0] for r in rows(
        "SELECT name FROM system.tables WHERE database = 'ringback' AND engine = 'MaterializedView'"
    )),
    "old_rows": rows("SELECT count() FROM ringback.ledger WHERE instance = 'i'")[0][0],
    "ingests_tenants": rows(
        "SELECT groupArray(tenant) FROM (SELECT tenant FROM ringback.ingests WHERE ingest_id = 'new-1')"
    )[0][0],
}))
"""
)


def upgraded(script: str, store: Path, old_ddl: Path) -> dict[str, Any]:
    """What `script` printed last, run on a store made with `old_ddl` (chDB: one store per process)."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(store), str(old_ddl), str(REPO_ROOT / "schemas")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_store_of_the_first_version_is_upgraded_in_place(tmp_path: Path) -> None:
    result = upgraded(UPGRADE, tmp_path / "store", FIRST_VERSION_DDL)
    assert result["statements"][0] == result["statements"][1]  # the same DDL, applied twice: idempotent
    assert {"tenant", "message_text"} <= set(result["events"])
    assert {"failures.report_index", "failure_counts", "body_sha256", "tenant"} <= set(result["dead_letters"])
    assert "tenant" in result["ledger"] and result["ledger_key"].endswith("seq, tenant")
    assert "tenant" in result["ingests"]
    assert result["views"] == [
        "event_keys_v2_from_copies",
        "event_variants_from_copies_v2",
        "ingests_from_dead_letters_v2",
        "ingests_from_event_copies",
    ]
    assert result["events_engine"] == "View"  # ringback.events is now exact at any merge state
    assert result["old_events"] == [["old-e1", "1.5", "app"]]  # the first version's events, copied into the new layout
    assert result["backup"] == 1 and result["old_ingests"] == 1
    assert result["old_rows"] == 1  # what the first version stored is still there
    assert result["ingests_tenants"] == ["acme"]  # the new views feed the tenant


MONTHLY_UPGRADE = (
    OLD_STORE
    + r"""
def rows(sql):
    return client.query(sql).result_rows
def partition_key():
    return rows("SELECT partition_key FROM system.tables WHERE database = 'ringback' AND name = 'event_copies'")[0][0]
columns = ["event_id", "event_type", "source", "route", "ingest_id", "report_index", "received_at", "occurred_at",
           "app_id", "charge", "status", "normalizer_version", "tenant"]
first = datetime(2026, 10, 30, 23, 0, tzinfo=timezone.utc)
later = datetime(2026, 10, 31, 1, 0, tzinfo=timezone.utc)
for row in (  # one insert each, as they arrived: a resend that disagrees (a conflict), and another day's event
    ["m-e1", "call.cdr", "cdr_push", "cdr-push", "m-req-1", 0, first, first, "app", "1.50", "answered", "v", "acme"],
    ["m-e1", "call.cdr", "cdr_push", "cdr-push", "m-req-2", 0, later, first, "app", "2.50", "answered", "v", "acme"],
    ["m-e2", "call.cdr", "cdr_push", "cdr-push", "m-req-3", 0, later, later, "app", "0.70", "answered", "v", "acme"],
):
    client.insert("ringback.event_copies", [row], column_names=columns)
before = partition_key()
clickhouse.apply_ddl(client, new)
clickhouse.apply_ddl(client, new)  # the next start: nothing left to move
client.insert("ringback.event_copies", [
    ["m-e3", "call.cdr", "cdr_push", "cdr-push", "m-req-4", 0, later, later, "app", "0.10", "answered", "v", "acme"],
], column_names=columns)
print(json.dumps({
    "before": before, "after": partition_key(),
    "events": [list(r) for r in rows(
        "SELECT event_id, toString(charge), ingest_id FROM ringback.events ORDER BY event_id")],
    "partitions": sorted({r[0] for r in rows(
        "SELECT partition FROM system.parts WHERE database = 'ringback' AND table = 'event_copies' AND active")}),
    "backup": rows("SELECT uniqExact(event_id) FROM ringback.event_copies_monthly_backup")[0][0],
    "ingests": sorted(r[0] for r in rows("SELECT DISTINCT ingest_id FROM ringback.ingests")),
    "variants": rows("SELECT count() FROM ringback.event_variants FINAL WHERE event_id = 'm-e1'")[0][0],
    "views": sorted(r[0] for r in rows(
        "SELECT name FROM system.tables WHERE database = 'ringback' AND engine = 'MaterializedView'")),
    "left": rows(
        "SELECT count() FROM system.tables WHERE database = 'ringback' AND name = 'event_copies_before_daily'")[0][0],
}))
"""
)


def test_event_copies_partitioned_by_month_move_to_partitions_by_day(tmp_path: Path) -> None:
    result = upgraded(MONTHLY_UPGRADE, tmp_path / "store", MONTHLY_DDL)
    assert result["before"].startswith("toYYYYMM(") and result["after"].startswith("toYYYYMMDD(")
    # every event kept, the first arrival still the one that counts; the new insert lands in the new layout
    assert result["events"] == [["m-e1", "1.5", "m-req-1"], ["m-e2", "0.7", "m-req-3"], ["m-e3", "0.1", "m-req-4"]]
    assert result["partitions"] == ["20261030", "20261031"]
    assert result["backup"] == 2 and result["left"] == 0
    assert result["ingests"] == ["m-req-1", "m-req-2", "m-req-3", "m-req-4"]  # refilled by the copy, then fed anew
    assert result["variants"] == 2  # the conflict's two versions are still there
    assert result["views"] == [
        "event_keys_v2_from_copies",
        "event_variants_from_copies_v2",
        "ingests_from_dead_letters_v2",
        "ingests_from_event_copies",
    ]
