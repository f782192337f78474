"""`ringback reconcile` counts exactly what was acknowledged, whatever the broker loses: kill tests on a
running `ringback run` (embedded broker).

The sink is held still across the broker's death, so ledger messages the edge published sit unread in the
broker when it dies. Measured before the edge counted from its journal: 4,499 acknowledged and stored,
``accepted`` 3,751, and reconcile said "ok". A recycle by the supervisor does the same. Then one
acknowledged request is really removed from the store: reconcile must say GAP and exit 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cdr_traffic import CDR_ROUTE, role_pid, send_all, traffic, wait_for_totals
from tests.pipeline import Pipeline, ringback, sql_rows

pytestmark = pytest.mark.integration
REQUESTS = 600
SETTLE_S = 120.0
ROUTE = CDR_ROUTE.removeprefix("/callbacks/")
IDENTITY_GAP = "acknowledged requests with nothing stored"

#: Removes every stored trace of one request from a stopped pipeline's store (argv: store, ingest id).
REMOVE_REQUEST = r"""
import sys
from ringback.runtime import clickhouse

store, ingest_id = sys.argv[1:3]
client = clickhouse.connect(f"chdb://{store}")
for table in ("ringback.event_copies", "ringback.ingests"):
    client.command(f"ALTER TABLE {table} DELETE WHERE ingest_id = '{ingest_id}' SETTINGS mutations_sync = 2")
print(client.query(f"SELECT count() FROM ringback.ingests WHERE ingest_id = '{ingest_id}'").result_rows[0][0])
"""


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(tmp_path / "data")
    yield running
    running.stop()


def signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def reconcile(pipeline: Pipeline, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ringback("reconcile", "--data-dir", str(pipeline.data_dir), "--settled", *extra),
        capture_output=True,
        timeout=120,
    )


def route_lines(pipeline: Pipeline) -> list[dict[str, Any]]:
    done = reconcile(pipeline, "--json")
    assert done.returncode in (0, 1), done.stderr.decode()
    return [line for line in json.loads(done.stdout or b"[]") if line["route"] == ROUTE]


def wait_for_accepted(pipeline: Pipeline, acknowledged: int, stored: int | None = None) -> list[dict[str, Any]]:
    """The reconcile lines once ``accepted`` reaches ``acknowledged`` and the stored requests ``stored``
    (by default as many; bounded)."""
    stored = acknowledged if stored is None else stored
    deadline = time.monotonic() + SETTLE_S
    lines = route_lines(pipeline)
    while time.monotonic() < deadline:
        if (
            sum(line["accepted"] for line in lines) >= acknowledged
            and sum(line["stored_requests"] for line in lines) >= stored
        ):
            return lines
        time.sleep(1)
        lines = route_lines(pipeline)
    return lines


def identity_gaps(lines: list[dict[str, Any]]) -> list[str]:
    """The gaps of the identity check. (The stage counts after the edge can still disagree after a broker
    loss: a normalizer's count of events it published to the broker that died can reach the new one.)"""
    return [gap for line in lines for gap in line["gaps"] if gap.endswith(IDENTITY_GAP)]


def send_across(pipeline: Pipeline, bodies: list[bytes], breakage: Any) -> list[int]:
    """Send ``bodies`` in the background; with the sink held still, break the broker under the traffic."""
    statuses: list[int] = []
    sender = threading.Thread(target=lambda: statuses.extend(send_all(pipeline.edge_url, bodies, workers=4)))
    sink_pid = role_pid(pipeline, "sink")
    sender.start()
    time.sleep(0.3)
    signal_all([sink_pid], signal.SIGSTOP)
    try:
        time.sleep(1.0)
        breakage()
        sender.join(300)
    finally:
        signal_all([sink_pid], signal.SIGCONT)
    return statuses


def test_accepted_survives_a_broker_kill_and_a_lost_request_is_a_gap(pipeline: Pipeline) -> None:
    pipeline.start()
    tag = uuid.uuid4().hex[:8]
    bodies, total = traffic(tag, REQUESTS)
    statuses = send_across(
        pipeline, bodies, lambda: signal_all([int(pipeline.run_file("run")["broker_pid"])], signal.SIGKILL)
    )
    acknowledged = statuses.count(200)
    assert acknowledged == len(bodies), statuses
    assert wait_for_totals(pipeline, tag, acknowledged, total) == (acknowledged, total)
    pipeline.wait_for_log("embedded broker died, restarting it", timeout_s=30)

    lines = wait_for_accepted(pipeline, acknowledged)
    assert sum(line["accepted"] for line in lines) == acknowledged, lines
    assert sum(line["stored_requests"] for line in lines) == acknowledged, lines
    assert not identity_gaps(lines), lines

    # One acknowledged request really goes missing from the store (the pipeline stopped, then started again).
    (victim,) = sql_rows(
        pipeline.data_dir, f"SELECT ingest_id FROM ringback.events WHERE request_id = '{tag}-7' LIMIT 1"
    )
    wait_until_journal_empty(pipeline)
    assert pipeline.stop() == 0
    removed = subprocess.run(
        [sys.executable, "-c", REMOVE_REQUEST, str(pipeline.data_dir / "clickhouse"), victim["ingest_id"]],
        capture_output=True,
        timeout=120,
    )
    assert removed.returncode == 0 and removed.stdout.split() == [b"0"], removed.stderr.decode()
    pipeline.start()
    lines = wait_for_accepted(pipeline, acknowledged, stored=acknowledged - 1)
    assert sum(line["accepted"] for line in lines) == acknowledged, lines  # the restarted edge says the same
    assert sum(line["stored_requests"] for line in lines) == acknowledged - 1, lines
    done = reconcile(pipeline)
    assert done.returncode == 1, done.stdout.decode()
    assert f"GAP: 1 {IDENTITY_GAP}" in done.stdout.decode()


def wait_until_journal_empty(pipeline: Pipeline, timeout_s: float = SETTLE_S) -> None:
    """The edge let go of everything (so a restart publishes nothing again that would fill the hole)."""
    import urllib.request

    deadline = time.monotonic() + timeout_s
    held = -1.0
    while time.monotonic() < deadline:
        with urllib.request.urlopen(pipeline.edge_url + "/metrics", timeout=30) as response:
            text = response.read().decode()
        held = next(
            float(line.split()[-1]) for line in text.splitlines() if line.startswith("ringback_edge_journal_records ")
        )
        if held == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"the journal still holds {held} callbacks")


def test_accepted_survives_a_broker_recycle_under_traffic(pipeline: Pipeline) -> None:
    """The supervisor's recycle (asked for through its request file) loses the ledger messages the held
    sink had not read, as a kill does."""
    pipeline.start()
    tag = uuid.uuid4().hex[:8]
    bodies, total = traffic(tag, REQUESTS)
    broker_pid = int(pipeline.run_file("run")["broker_pid"])

    def recycle() -> None:
        """Asked for, and over before the held sink may read again."""
        (pipeline.data_dir / "run" / "recycle-broker").touch()
        deadline = time.monotonic() + SETTLE_S
        while int(pipeline.run_file("run")["broker_pid"]) == broker_pid and time.monotonic() < deadline:
            time.sleep(0.2)

    statuses = send_across(pipeline, bodies, recycle)
    assert int(pipeline.run_file("run")["broker_pid"]) != broker_pid, pipeline.log()[-4000:]
    assert "embedded broker to be recycled" in pipeline.log()
    acknowledged = statuses.count(200)
    assert acknowledged == len(bodies), statuses
    assert wait_for_totals(pipeline, tag, acknowledged, total) == (acknowledged, total)

    lines = wait_for_accepted(pipeline, acknowledged)
    assert sum(line["accepted"] for line in lines) == acknowledged, lines
    assert sum(line["stored_requests"] for line in lines) == acknowledged, lines
    assert not identity_gaps(lines), lines
