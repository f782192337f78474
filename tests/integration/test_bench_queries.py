"""`ringback bench-queries` on a small store: the events it generates are all there (resent copies
included), and every cookbook query runs and is timed. Run the way
`make bench-queries` runs it: from the repository, with a relative results folder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ringback.tools.bench import queries
from tests.pipeline import ringback

pytestmark = pytest.mark.integration
ROWS = 200_000


def test_a_small_bench_queries_run_reports_every_query(tmp_path: Path) -> None:
    done = subprocess.run(
        ringback("bench-queries", "--rows", str(ROWS), "--days", "2", "--results", "results"),
        cwd=tmp_path,
        capture_output=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    report = json.loads((tmp_path / "results" / "bench-queries.json").read_text())
    assert report["rows_generated"] == ROWS
    # every event, one in 20 inserted twice (merges may already have collapsed some of those copies)
    assert ROWS <= report["copies_stored"] <= ROWS + ROWS // queries.RESENT_EVERY
    names = [q.name for q in queries.cookbook("2026-10-01", "2026-10-01 10:00:00", "call-1")]
    assert list(report["queries"]) == names
    printed = done.stdout.decode()
    for name, timing in report["queries"].items():
        assert timing["best_s"] <= timing["median_s"], (name, timing)
        # the table printed says what the report says
        assert f"{name:<52} {timing['best_s']:>7.3f}s {timing['median_s']:>7.3f}s" in printed, (name, printed)
