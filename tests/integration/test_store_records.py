"""What the store records about events that went wrong, on the real embedded engine: dead letters are
marked resolved once what failed is stored (a corrected resend, a replay), and a billing conflict is
recorded, counted and logged once — with its tenant, source, app and vendor ids — however often the sink starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

PRELUDE = r"""
import json, sys
from datetime import datetime, timedelta, timezone
from ringback.runtime import clickhouse

client = clickhouse.connect(f"chdb://{sys.argv[1]}")
clickhouse.apply_ddl(client, sys.argv[2])
t0 = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)
EVENT = ["event_id", "event_type", "source", "route", "ingest_id", "report_index", "received_at", "occurred_at",
         "app_id", "request_id", "call_id", "charge", "duration_s", "status", "normalizer_version", "tenant"]
def copy(event_id, route, ingest_id, received, request_id=None, call_id=None, charge=None, seconds=None,
         tenant="acme", app="appM"):
    client.insert("ringback.event_copies", [[event_id, "call.cdr", "cdr_push", route, ingest_id, 0, received, t0, app,
                                             request_id, call_id, charge, seconds, "answered", "v", tenant]],
                  column_names=EVENT)
def rows(sql):
    return client.query(sql).result_rows
"""

DEAD_LETTERS = (
    PRELUDE
    + r"""
LETTER = ["route", "ingest_id", "report_index", "received_at", "failure_type", "tenant", "ids"]
for letter in (
    ["cdr-push", "dl-resent", 0, t0, "invalid_amount", "acme", {"request_id": ["R-1"], "app_id": ["appM"]}],
    ["cdr-push", "dl-replayed", -1, t0, "invalid_json", "acme", {}],
    ["cdr-push", "dl-open", 0, t0, "invalid_amount", "acme", {"request_id": ["R-2"]}],
    ["cdr-push", "dl-earlier", 0, t0, "invalid_amount", "acme", {"request_id": ["R-3"]}],
    ["cdr-push", "dl-other-tenant", 0, t0, "invalid_amount", "acme", {"request_id": ["R-4"]}],
    ["callback-call/hangup", "dl-other-route", 0, t0, "invalid_time", "acme", {"call_id": ["R-5"]}],
):
    client.insert("ringback.dead_letters", [letter], column_names=LETTER)
before = rows("SELECT count() FROM ringback.dead_letter_status WHERE resolved_at IS NOT NULL")[0][0]
copy("e1", "cdr-push", "fixed-resend", t0 + timedelta(minutes=5), request_id="R-1")   # the corrected resend
copy("e2", "cdr-push", "dl-replayed", t0, request_id="R-9")                            # the replay: same request
copy("e3", "cdr-push", "old", t0 - timedelta(minutes=5), request_id="R-3")            # stored before it failed
copy("e4", "cdr-push", "else", t0 + timedelta(minutes=5), request_id="R-4", tenant="beta")
copy("e5", "cdr-push", "state", t0 + timedelta(minutes=5), request_id="R-5")          # another route's id
print(json.dumps({"before": before, "status": {r[0]: r[1] for r in rows(
    "SELECT ingest_id, resolved_by FROM ringback.dead_letter_status")}}))
"""
)

CONFLICTS = (
    PRELUDE
    + r"""
from ringback.sink.conflicts import ConflictWatcher
copy("c1", "cdr-push", "first", t0, request_id="MONEY-2", charge="0.06", seconds=10)
copy("c1", "cdr-push", "second", t0 + timedelta(minutes=1), request_id="MONEY-2", charge="999.99", seconds=9999,
     app="appX")
first = ConflictWatcher(30.0).look(client)
again = ConflictWatcher(30.0).look(client)  # the sink started again
copy("c1", "cdr-push", "third", t0 + timedelta(minutes=2), request_id="MONEY-2", charge="5", seconds=50)
third = ConflictWatcher(30.0).look(client)
print(json.dumps({"first": first, "again": again, "third": third, "recorded": [
    list(r) for r in rows(
        "SELECT tenant, source, app_id, request_id, versions, toString(charge) FROM ringback.event_conflicts FINAL")]}))
"""
)


def run(script: str, store: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", script, str(store), str(REPO_ROOT / "schemas")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_dead_letter_is_resolved_once_a_resend_or_a_replay_stores_what_failed(tmp_path: Path) -> None:
    result = run(DEAD_LETTERS, tmp_path / "store")
    assert result["before"] == 0
    assert result["status"] == {
        "dl-resent": "resend",
        "dl-replayed": "replay",
        "dl-open": None,
        "dl-earlier": None,  # what was stored before the failure does not settle it
        "dl-other-tenant": None,
        "dl-other-route": None,
    }


def test_a_conflict_is_recorded_and_counted_once_with_its_source_app_and_ids(tmp_path: Path) -> None:
    result = run(CONFLICTS, tmp_path / "store")
    assert (result["first"], result["again"], result["third"]) == (1, 0, 0)
    # recorded again when it gained a version; the first arrival's app
    assert result["recorded"] == [["acme", "cdr_push", "appM", "MONEY-2", 3, "[0.06,999.99,5]"]]
