"""`ringback status` counts dead-lettered requests, not dead-letter rows: a dead letter loaded twice (its
topic read again after a restart, a replay that failed again and has not merged yet) is one request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

SCRIPT = r"""
import json, sys
from datetime import datetime, timezone
from ringback import config
from ringback.runtime import clickhouse
from ringback.pipeline_status import dead_letters_by_reason

settings = config.load({"data_dir": sys.argv[1]}, environ={})
client = clickhouse.connect(settings.effective_clickhouse_dsn)
clickhouse.apply_ddl(client, sys.argv[2])
client.command("SYSTEM STOP MERGES ringback.dead_letters")  # the copies stay apart, as before a merge
now = datetime.now(timezone.utc)
columns = ["route", "ingest_id", "report_index", "received_at", "failure_type", "replayed_at", "source_offset"]
for row in (
    ["cdr-push", "req-1", -1, now, "invalid_json", None, 1],
    ["cdr-push", "req-1", -1, now, "invalid_json", now, 7],  # replayed, failed again: replaces it once merged
    ["cdr-push", "req-2", 0, now, "missing_field", None, 2],
    ["cdr-push", "req-2", 0, now, "missing_field", None, 3],  # the raw message read again after a restart
    ["cdr-push", "req-3", 1, now, "missing_field", None, 4],
    ["cdr-push", "req-3", 2, now, "missing_field", None, 4],  # two rows of one request
):
    client.insert("ringback.dead_letters", [row], column_names=columns)
rows = client.query("SELECT count() FROM ringback.dead_letters").result_rows[0][0]
client.close()
print(json.dumps({"rows": rows, "by_reason": dead_letters_by_reason(settings)}))
"""


def test_status_counts_each_dead_lettered_request_once(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "data"), str(REPO_ROOT / "schemas")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rows"] == 6
    assert result["by_reason"] == {"invalid_json": 1, "missing_field": 2}
