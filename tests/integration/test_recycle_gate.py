"""A recycle of the embedded broker waits for billing jobs on the normalized topic: until they caught up,
or, bounded by `embedded_broker_recycle_wait_s`, alarmed (log line and metric) when one is still behind."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cdr_traffic import wait_for_totals
from tests.integration.test_billing_incarnations import expected, job_total, run_job, send, sql_total
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration
#: The recycle's wait for consumers (--embedded-broker-recycle-wait-s): long enough for the billing job
#: to run and catch up while a recycle waits, on a busy machine.
WAIT_S = 30
WAITING = "waiting for topic consumers to catch up before recycling the embedded broker"
CAUGHT_UP = "topic consumers caught up: recycling the embedded broker"
BEHIND = "recycling the embedded broker with topic consumers behind"


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(tmp_path / "data", extra_args=["--embedded-broker-recycle-wait-s", str(WAIT_S)])
    yield running
    running.stop()


def recycles(pipeline: Pipeline, outcome: str) -> float:
    url = pipeline.run_file("supervisor")["metrics"]
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    name = f'ringback_run_broker_recycles_total{{outcome="{outcome}"}} '
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def ask_for_recycle(pipeline: Pipeline) -> int:
    """Ask for a recycle; returns the pid of the broker to be recycled."""
    pid = int(pipeline.run_file("run")["broker_pid"])
    (pipeline.data_dir / "run" / "recycle-broker").touch()
    return pid


def wait_for_new_broker(pipeline: Pipeline, old_pid: int) -> None:
    deadline = time.monotonic() + WAIT_S * 3
    while int(pipeline.run_file("run")["broker_pid"]) == old_pid and time.monotonic() < deadline:
        time.sleep(0.2)
    assert int(pipeline.run_file("run")["broker_pid"]) != old_pid, pipeline.log()[-4000:]


def test_a_recycle_waits_for_a_billing_job_and_is_alarmed_when_one_stays_behind(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.start()
    tag = uuid.uuid4().hex[:8]
    out = tmp_path / "totals.json"

    # the job billed 5, then 3 more come: it is behind, and stays behind
    send(pipeline, tag, range(5))
    assert wait_for_totals(pipeline, tag, *expected(tag, range(5))) == expected(tag, range(5))
    run_job(pipeline, out)
    send(pipeline, tag, range(5, 8))
    assert wait_for_totals(pipeline, tag, *expected(tag, range(8))) == expected(tag, range(8))
    started = time.monotonic()
    old = ask_for_recycle(pipeline)
    pipeline.wait_for_log(WAITING, timeout_s=WAIT_S * 3)
    pipeline.wait_for_log(BEHIND, timeout_s=WAIT_S * 3)
    assert time.monotonic() - started >= WAIT_S * 0.9  # it waited, as long as it may
    assert f"{BEHIND}: they lose what it holds behind={{'billing-example': 3}}" in pipeline.log()
    wait_for_new_broker(pipeline, old)
    assert recycles(pipeline, "consumers_behind") == 1 and recycles(pipeline, "caught_up") == 0

    # on the new broker: the job bills what comes, falls behind, and catches up while the recycle waits
    send(pipeline, tag, range(8, 10))
    assert wait_for_totals(pipeline, tag, *expected(tag, range(10))) == expected(tag, range(10))
    run_job(pipeline, out)
    send(pipeline, tag, range(10, 13))
    assert wait_for_totals(pipeline, tag, *expected(tag, range(13))) == expected(tag, range(13))
    old = ask_for_recycle(pipeline)
    pipeline.wait_for_log(WAITING, times=2, timeout_s=WAIT_S * 3)
    assert BEHIND not in pipeline.log().split(WAITING)[-1]
    run_job(pipeline, out)
    pipeline.wait_for_log(CAUGHT_UP, timeout_s=WAIT_S * 3)
    assert recycles(pipeline, "caught_up") == 1 and recycles(pipeline, "consumers_behind") == 1
    wait_for_new_broker(pipeline, old)
    assert BEHIND not in pipeline.log().split(WAITING)[-1]
    # the job lost the three events the first recycle took from it, and only those
    assert wait_for_totals(pipeline, tag, *expected(tag, range(13))) == expected(tag, range(13))
    events, charge = job_total(out, tag)
    assert (events, charge) == (13 - 3, sql_total(pipeline, tag)[1] - expected(tag, range(5, 8))[1])
