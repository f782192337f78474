"""`ringback status` counts dead-lettered requests, each once, whatever the table holds before its merges.

Measured before: 453 dead letters for 452 requests. A request is dead-lettered again when the normalizer
reads it twice (a restart before its commit) or when a replay fails again; until the table's merges
collapse the copies, counting rows counts it twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

#: In its own process: chDB opens one store per process, and the test session has its own.
SCRIPT = """
import json, sys
from ringback import config, pipeline_status
from ringback.runtime import clickhouse

settings = config.load({"data_dir": sys.argv[1]}, environ={})
client = clickhouse.connect(settings.effective_clickhouse_dsn)
clickhouse.apply_ddl(client, settings.schemas_dir)
client.command("SYSTEM STOP MERGES ringback.dead_letters")
for route, ingest_id, report_index, failure_type, second in json.loads(sys.argv[2]):
    client.command(
        "INSERT INTO ringback.dead_letters (route, ingest_id, report_index, received_at, failure_type, "
        f"dead_lettered_at) VALUES ('{route}', '{ingest_id}', {report_index}, now64(6), '{failure_type}', "
        f"now64(6) + INTERVAL {second} SECOND)"
    )
client.close()
print(json.dumps(pipeline_status.dead_letters_by_reason(settings)))
"""


def test_each_dead_lettered_request_is_counted_once(tmp_path: Path) -> None:
    rows = [
        ("cdr-push", "a", 0, "invalid_field", 0),
        ("cdr-push", "a", 0, "invalid_field", 1),  # the same dead letter, read twice
        ("tencent/sms-status", "b", -1, "malformed_body", 0),
        ("tencent/sms-status", "b", 2, "invalid_field", 5),  # replayed, failed again, on another report
        ("tencent/sms-status", "c", -1, "malformed_body", 0),
    ]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "data"), json.dumps(rows)], capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout.decode().splitlines()[-1]) == {"invalid_field": 2, "malformed_body": 1}
