"""The edge's journal on a disk that fills: a running `ringback run` whose `<data_dir>/spool` is a small
tmpfs of its own. Callbacks the journal cannot write are refused (retryable), never acknowledged;
once the sink catches up the journal gives the space back and acceptance resumes; after a power cut
on a full disk and a restart, every acknowledged callback is stored exactly once.

Measured before: on a 300 KiB spool, a short write acknowledged a half-written callback, the cursor
could not be written (no space for its replacement file), so nothing was trimmed and the edge stayed
not ready; a restart cut the torn frame and every whole frame after it without a word — 51 of 936
acknowledged receipts were never stored.
"""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cdr_traffic import cdr, role_pid, send_all
from tests.integration.test_crash import kill, wait_gone
from tests.pipeline import Pipeline, sql_rows

pytestmark = pytest.mark.integration

SPOOL_DISK = "300k"
#: Enough CDRs to fill the spool several times over while nothing is stored.
FILL_REQUESTS = 1500
LATER_REQUESTS = 100
RETRYABLE = 500  # the CDR platform's retryable failure
SETTLE_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 60.0


@pytest.fixture
def spool_disk(tmp_path: Path) -> Iterator[Path]:
    data_dir = tmp_path / "data"
    spool = data_dir / "spool"
    spool.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SPOOL_DISK}", "tmpfs", str(spool)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"a small disk for the journal needs mount (root): {done.stderr.decode().strip()}")
    yield data_dir
    subprocess.run(["umount", "-l", str(spool)], capture_output=True)


def ready(pipeline: Pipeline) -> bool:
    try:
        with urllib.request.urlopen(pipeline.edge_url + "/readyz", timeout=10) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(pipeline: Pipeline) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready(pipeline):
        assert time.monotonic() < deadline, f"the edge did not become ready again:\n{pipeline.log()[-3000:]}"
        time.sleep(0.2)


def fill(pipeline: Pipeline, tag: str, first: int, count: int) -> set[str]:
    """Send CDRs until well past a full disk; the request ids acknowledged."""
    ids = [f"{tag}-{i}" for i in range(first, first + count)]
    statuses = send_all(pipeline.edge_url, [cdr(tag, i)[0] for i in range(first, first + count)])
    assert set(statuses) <= {200, RETRYABLE}, sorted(set(statuses))
    return {request_id for request_id, status in zip(ids, statuses, strict=True) if status == 200}


def stored_counts(data_dir: Path, tag: str) -> dict[str, int] | None:
    try:
        rows = sql_rows(
            data_dir,
            f"SELECT request_id, count() AS n FROM ringback.events_dedup WHERE app_id = 'app-{tag}' "
            "GROUP BY request_id",
        )
    except AssertionError:
        return None  # the store does not answer yet
    return {row["request_id"]: int(row["n"]) for row in rows}


def wait_stored(pipeline: Pipeline, tag: str, acknowledged: set[str]) -> dict[str, int]:
    """Every acknowledged request id stored (bounded wait); how many times each stored id is there."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    stored: dict[str, int] = {}
    while time.monotonic() < deadline and not acknowledged <= stored.keys():
        stored = stored_counts(pipeline.data_dir, tag) or stored
        time.sleep(1)
    missing = acknowledged - stored.keys()
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged callbacks never stored"
    return stored


def test_a_full_journal_disk_acknowledges_only_what_it_keeps(spool_disk: Path) -> None:
    pipeline = Pipeline(spool_disk).start()
    try:
        tag = uuid.uuid4().hex[:8]
        sink = role_pid(pipeline, "sink")
        kill([sink], signal.SIGSTOP)
        acknowledged = fill(pipeline, tag, 0, FILL_REQUESTS)
        assert 0 < len(acknowledged) < FILL_REQUESTS, "the spool disk never filled"
        assert not ready(pipeline)

        kill([sink], signal.SIGCONT)  # the sink stores, the journal lets go and gives space back
        wait_ready(pipeline)
        later = range(FILL_REQUESTS, FILL_REQUESTS + LATER_REQUESTS)
        assert send_all(pipeline.edge_url, [cdr(tag, i)[0] for i in later]) == [200] * LATER_REQUESTS
        acknowledged |= {f"{tag}-{i}" for i in later}
        wait_stored(pipeline, tag, acknowledged)  # published and stored by the same edge, no restart needed

        kill([sink], signal.SIGSTOP)  # full again, then a power cut on the full disk
        acknowledged |= fill(pipeline, tag, FILL_REQUESTS + LATER_REQUESTS, FILL_REQUESTS)
        pids = pipeline.all_pids()
        kill(pids)
        wait_gone(pids)
        assert pipeline.process is not None
        pipeline.process.wait()

        pipeline.start()  # the same data dir, the spool still full
        stored = wait_stored(pipeline, tag, acknowledged)
        assert {request_id: n for request_id, n in stored.items() if n != 1} == {}
        wait_ready(pipeline)  # and the edge takes callbacks again after the restart
    finally:
        pipeline.stop()
