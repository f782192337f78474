"""The DDL upgrades a store that an earlier version created, keeping its rows (columns added, the
ledger's sort key extended, the ingests views replaced), and applying it again changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO_ROOT

pytestmark = pytest.mark.integration
FIRST_VERSION_DDL = FIXTURES / "ddl_v1"  # schemas/clickhouse as the first release shipped it

UPGRADE = r"""
import json, sys
from datetime import datetime, timezone
from pathlib import Path
from ringback.runtime import clickhouse

store, old, new = sys.argv[1:4]
client = clickhouse.connect(f"chdb://{store}")
for path in sorted(Path(old).glob("*.sql")):  # the first version's DDL, applied as that version applied it
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("--"))
    for statement in text.split(";"):
        if statement.strip():
            client.command(statement.strip().replace("{on_cluster}", ""))
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


def test_a_store_of_the_first_version_is_upgraded_in_place(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", UPGRADE, str(tmp_path / "store"), str(FIRST_VERSION_DDL), str(REPO_ROOT / "schemas")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["statements"][0] == result["statements"][1]  # the same DDL, applied twice: idempotent
    assert {"tenant", "message_text"} <= set(result["events"])
    assert {"failures.report_index", "failure_counts", "body_sha256", "tenant"} <= set(result["dead_letters"])
    assert "tenant" in result["ledger"] and result["ledger_key"].endswith("seq, tenant")
    assert "tenant" in result["ingests"]
    assert result["views"] == [
        "event_variants_from_copies",
        "ingests_from_dead_letters_v2",
        "ingests_from_event_copies",
    ]
    assert result["events_engine"] == "View"  # ringback.events is now exact at any merge state
    assert result["old_events"] == [["old-e1", "1.5", "app"]]  # the first version's events, copied into the new layout
    assert result["backup"] == 1 and result["old_ingests"] == 1
    assert result["old_rows"] == 1  # what the first version stored is still there
    assert result["ingests_tenants"] == ["acme"]  # the new views feed the tenant
