"""The example billing job stays exact when the embedded broker starts afresh under it: `ringback run`
restarted on the same data directory, and the broker recycled by the supervisor.

Measured before the consumer kit knew broker incarnations: after a restart the job applied none of three
new events (their offsets were below the ones it had saved): 3.29 CNY where SQL said 3.99, and resends
counted as first copies.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.cdr_traffic import cdr, send_all, wait_for_totals
from tests.conftest import REPO_ROOT
from tests.pipeline import Pipeline, sql_rows

pytestmark = pytest.mark.integration
JOB = REPO_ROOT / "examples" / "billing_job.py"
JOB_TIMEOUT_S = 180
#: The embedded broker ignores a member leaving; a short session lets the job's next run join at once.
SESSION_TIMEOUT_MS = "2000"


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(tmp_path / "data")
    yield running
    running.stop()


def run_job(pipeline: Pipeline, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            str(JOB),
            "--data-dir",
            str(pipeline.data_dir),
            "--out",
            str(out),
            "--session-timeout-ms",
            SESSION_TIMEOUT_MS,
        ],
        capture_output=True,
        timeout=JOB_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr.decode()
    summary: dict[str, Any] = json.loads(done.stderr.decode().strip().splitlines()[-1])
    return summary


def job_total(out: Path, tag: str) -> tuple[int, Decimal]:
    rows = [row for row in json.loads(out.read_text())["totals"] if row["app_id"] == f"app-{tag}"]
    return sum(int(row["events"]) for row in rows), sum((Decimal(row["charge"]) for row in rows), Decimal(0))


def sql_total(pipeline: Pipeline, tag: str) -> tuple[int, Decimal]:
    (row,) = sql_rows(
        pipeline.data_dir,
        f"SELECT count() AS n, toString(sum(charge)) AS charge FROM ringback.events_dedup WHERE app_id = 'app-{tag}'",
    )
    return int(row["n"]), Decimal(row["charge"] or 0)


def send(pipeline: Pipeline, tag: str, numbers: range) -> list[bytes]:
    bodies = [cdr(tag, i)[0] for i in numbers]
    assert send_all(pipeline.edge_url, bodies, workers=4) == [200] * len(bodies)
    return bodies


def expected(tag: str, numbers: range) -> tuple[int, Decimal]:
    return len(numbers), sum((cdr(tag, i)[1] for i in numbers), Decimal(0))


def bill_send_and_bill_again(pipeline: Pipeline, out: Path, tag: str, start_afresh: Any) -> dict[str, Any]:
    """Bill 12 events (3 sent twice), let the broker start afresh, send 3 new ones and resend 6 billed
    ones, bill again: the job's totals equal SQL's each time."""
    first = range(12)
    send(pipeline, tag, first)
    send(pipeline, tag, range(3))  # resends before the first bill
    assert wait_for_totals(pipeline, tag, *expected(tag, first)) == expected(tag, first)
    billed = run_job(pipeline, out)
    assert billed["events"] == len(first)
    assert job_total(out, tag) == sql_total(pipeline, tag) == expected(tag, first)

    start_afresh()
    everything = range(15)
    send(pipeline, tag, range(12, 15))
    send(pipeline, tag, range(0, 12, 2))  # resends of events billed before the broker started afresh
    assert wait_for_totals(pipeline, tag, *expected(tag, everything)) == expected(tag, everything)
    again = run_job(pipeline, out)
    assert job_total(out, tag) == sql_total(pipeline, tag) == expected(tag, everything), again
    assert again["incarnations"] == 1 and again["events"] == 3, again
    return again


def test_the_job_stays_exact_across_a_restart_of_ringback_run(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.start()

    def restart() -> None:
        assert pipeline.stop() == 0
        pipeline.start()

    bill_send_and_bill_again(pipeline, tmp_path / "totals.json", uuid.uuid4().hex[:8], restart)


def test_the_job_stays_exact_across_a_broker_recycle(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.start()

    def recycle() -> None:
        before = pipeline.bootstrap, pipeline.run_file("run")["broker_pid"]
        (pipeline.data_dir / "run" / "recycle-broker").touch()
        deadline = time.monotonic() + 120
        while pipeline.run_file("run")["broker_pid"] == before[1] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pipeline.run_file("run")["broker_pid"] != before[1], pipeline.log()
        assert "embedded broker to be recycled" in pipeline.log()

    bill_send_and_bill_again(pipeline, tmp_path / "totals.json", uuid.uuid4().hex[:8], recycle)
