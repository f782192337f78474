"""The dead-letter guard on a running `ringback run`: one big bad request halts nothing; a real surge
pauses the normalizer with an alarm (no exit, no restart loop) and work goes on after the pause."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.pipeline import Pipeline, post, sql_rows, wait_for_rows

pytestmark = pytest.mark.integration
SMS = "/callbacks/tencent/sms-status"
CDR = "/callbacks/cdr-push"
PAUSE_S = 8


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    guard = [
        "--dlq-guard-min-requests",
        "20",
        "--dlq-guard-min-distinct",
        "10",
        "--dlq-guard-window",
        "40",
        "--dlq-guard-pause-s",
        str(PAUSE_S),
    ]
    running = Pipeline(tmp_path_factory.mktemp("guard") / "data", extra_args=guard).start()
    yield running
    running.stop()


def ops(pipeline: Pipeline, path: str) -> tuple[int, bytes]:
    base = pipeline.run_file("normalizer")["metrics"].rsplit("/", 1)[0]
    try:
        with urllib.request.urlopen(base + path, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def sms(tag: str, i: int) -> bytes:
    return json.dumps(
        [
            {
                "user_receive_time": "2026-11-21 08:00:00",
                "nationcode": "86",
                "mobile": "13800138000",
                "report_status": "SUCCESS",
                "errmsg": "DELIVRD",
                "description": "ok",
                "sid": f"{tag}-{i}",
            }
        ]
    ).encode()


def wait_for(condition: Any, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return False


def test_one_small_request_of_a_thousand_bad_reports_halts_nothing(pipeline: Pipeline) -> None:
    tag = uuid.uuid4().hex[:8]
    pid = pipeline.run_file("normalizer")["pid"]
    poison = json.dumps([f"{tag}-{i}" for i in range(1000)]).encode()  # ~2 KB of strings where reports belong
    assert len(poison) < 20_000
    assert post(pipeline.edge_url + SMS, poison)[0] == 200
    for i in range(20):
        assert post(pipeline.edge_url + SMS, sms(tag, i))[0] == 200
    assert (
        len(wait_for_rows(pipeline.data_dir, f"SELECT sid FROM ringback.events_dedup WHERE sid LIKE '{tag}-%'", 20))
        == 20
    )
    (dead,) = wait_for_rows(
        pipeline.data_dir,
        (
            "SELECT failed_reports, length(failures.report_index) AS listed, length(body) AS size FROM "
            f"ringback.dead_letters WHERE position(body, '{tag}-999') > 0"
        ),
        1,
    )
    assert dead == {"failed_reports": 1000, "listed": 100, "size": len(poison)}
    assert pipeline.run_file("normalizer")["pid"] == pid  # never stopped
    assert ops(pipeline, "/readyz")[0] == 200


def test_a_surge_pauses_with_an_alarm_then_work_goes_on_without_a_restart(pipeline: Pipeline) -> None:
    tag = uuid.uuid4().hex[:8]
    pid = pipeline.run_file("normalizer")["pid"]
    for i in range(40):
        assert post(pipeline.edge_url + CDR, f"{tag} garbage {i} {{".encode())[0] == 200  # durable, so acknowledged
    assert wait_for(lambda: ops(pipeline, "/readyz")[0] == 503, 30), "the guard did not trip"
    _status, body = ops(pipeline, "/readyz")
    assert "dead-letter guard tripped" in json.loads(body)["reasons"][0]
    assert "ringback_normalizer_guard_tripped 1.0" in ops(pipeline, "/metrics")[1].decode()
    assert ops(pipeline, "/healthz")[0] == 200  # alive: paused, not crashed
    for i in range(5):
        assert post(pipeline.edge_url + SMS, sms(tag, i))[0] == 200  # the edge keeps taking callbacks
    assert wait_for(lambda: ops(pipeline, "/readyz")[0] == 200, PAUSE_S + 60), "the guard never let go"
    assert (
        len(
            wait_for_rows(
                pipeline.data_dir, f"SELECT sid FROM ringback.events_dedup WHERE sid LIKE '{tag}-%'", 5, timeout_s=60
            )
        )
        == 5
    )
    dead = wait_for_rows(
        pipeline.data_dir, f"SELECT ingest_id FROM ringback.dead_letters WHERE position(body, '{tag} garbage') > 0", 40
    )
    assert len({row["ingest_id"] for row in dead}) == 40  # the held requests were dead-lettered, each once
    assert pipeline.run_file("normalizer")["pid"] == pid  # no exit, no restart loop
    assert "role died" not in pipeline.log()
    assert sql_rows(pipeline.data_dir, "SELECT 1 AS one") == [{"one": 1}]
