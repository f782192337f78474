"""The production roles, each its own process, against an existing broker given by bootstrap address."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import orjson
import pytest

from ringback.runtime.ports import free_port, wait_for_port
from tests.pipeline import post, ringback, wait_for_rows, wait_for_run_file

pytestmark = pytest.mark.integration
ROLE_START_TIMEOUT_S = 60.0


def test_roles_run_against_an_external_bootstrap_address(tmp_path: Path) -> None:
    kafka_port = free_port()
    data_dir = tmp_path / "data"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("RINGBACK_")}
    # Configured the production way: environment variables (and one flag, below).
    env = {
        **base_env,
        "RINGBACK_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
        "RINGBACK_DATA_DIR": str(data_dir),
        "RINGBACK_SINK_BATCH_SECONDS": "0.2",
    }
    processes: list[subprocess.Popen[bytes]] = []
    logs = tmp_path / "roles.log"
    with open(logs, "wb") as log:
        try:
            broker = subprocess.Popen(
                ringback("broker", "--kafka-port", str(kafka_port)), env=base_env, stdout=log, stderr=log
            )
            processes.append(broker)
            assert wait_for_port("127.0.0.1", kafka_port, 30)
            for role in ("sink", "normalizer"):
                processes.append(subprocess.Popen(ringback(role), env=env, stdout=log, stderr=log))
            edge = subprocess.Popen(ringback("edge", "--port", "0"), env=env, stdout=log, stderr=log)
            processes.append(edge)
            edge_url = wait_for_run_file(data_dir, "edge", edge, ROLE_START_TIMEOUT_S)["url"]
            for process, role in zip(processes[1:3], ("sink", "normalizer"), strict=True):
                wait_for_run_file(data_dir, role, process, ROLE_START_TIMEOUT_S)

            sid = uuid.uuid4().hex
            body = orjson.dumps(
                [
                    {
                        "user_receive_time": "2026-11-21 12:00:00",
                        "nationcode": "86",
                        "mobile": "13800138000",
                        "report_status": "SUCCESS",
                        "errmsg": "DELIVRD",
                        "description": "ok",
                        "sid": sid,
                    }
                ]
            )
            assert post(edge_url + "/callbacks/tencent/sms-status", body) == (200, b'{"result":0,"errmsg":"OK"}')
            rows = wait_for_rows(data_dir, f"SELECT sid, status FROM ringback.events_dedup WHERE sid = '{sid}'", 1)
            assert rows == [{"sid": sid, "status": "delivered"}], logs.read_text(errors="replace")
        finally:
            for process in reversed(processes):
                process.send_signal(signal.SIGTERM)
            codes = [process.wait(60) for process in reversed(processes)]
    assert codes == [0, 0, 0, 0], logs.read_text(errors="replace")
    lines = [line for line in logs.read_text().splitlines() if line.startswith("{")]
    assert lines and {json.loads(line)["role"] for line in lines} == {
        "broker",
        "edge",
        "normalizer",
        "sink",
    }  # JSON logs in production roles
