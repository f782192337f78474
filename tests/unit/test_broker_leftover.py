"""A broker an earlier run left behind is stopped; a process that merely got its pid never is.

The "broker" here is a `sleep`: to ``stop_leftover`` a process is the one recorded when its pid, start
time and command line all match, whatever the program.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ringback.runtime import runfiles
from ringback.runtime.broker import RUN_FILE, stop_leftover

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process start times come from /proc")
GONE_OWNER = 0  # no process has pid 0: the run that owned the broker is gone


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "300"])
    yield process
    process.kill()
    process.wait()


def record(run_dir: Path, broker_pid: int, **changes: Any) -> None:
    data = {
        "broker_pid": broker_pid,
        "broker_started": runfiles.process_started(broker_pid),
        "broker_cmdline": runfiles.process_cmdline(broker_pid),
        "bootstrap": "127.0.0.1:9",
        "pid": GONE_OWNER,
        "owner_started": None,
        **changes,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / f"{RUN_FILE}.json").write_text(json.dumps(data))


def test_the_recorded_process_is_stopped_once_its_owner_is_gone(
    tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    record(tmp_path, bystander.pid)
    assert stop_leftover(tmp_path)
    assert bystander.wait(5) == -15  # asked with SIGTERM first


def test_a_reused_pid_with_another_start_time_is_left_alone(tmp_path: Path, bystander: subprocess.Popen[bytes]) -> None:
    started = runfiles.process_started(bystander.pid)
    assert started is not None
    record(tmp_path, bystander.pid, broker_started=started - 1)
    assert not stop_leftover(tmp_path)
    assert bystander.poll() is None


def test_a_reused_pid_with_another_command_line_is_left_alone(
    tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    record(tmp_path, bystander.pid, broker_cmdline=["/opt/tansu", "broker", "--listener-url", "tcp://127.0.0.1:9"])
    assert not stop_leftover(tmp_path)
    assert bystander.poll() is None


def test_the_broker_of_a_run_still_alive_is_left_alone(tmp_path: Path, bystander: subprocess.Popen[bytes]) -> None:
    with subprocess.Popen(["sleep", "300"]) as owner:
        try:
            record(tmp_path, bystander.pid, pid=owner.pid, owner_started=runfiles.process_started(owner.pid))
            assert not stop_leftover(tmp_path)
            assert bystander.poll() is None
        finally:
            owner.kill()


def test_no_record_or_a_gone_process_is_nothing_to_stop(tmp_path: Path) -> None:
    assert not stop_leftover(tmp_path)
    gone = subprocess.Popen(["true"])
    started = runfiles.process_started(gone.pid)
    gone.wait()
    record(tmp_path, gone.pid, broker_started=started, broker_cmdline=["true"])
    assert not stop_leftover(tmp_path)


def test_a_process_start_time_names_one_process() -> None:
    own = runfiles.process_started(os.getpid())
    assert own is not None and own == runfiles.process_started(os.getpid())
    assert runfiles.same_process(os.getpid(), own, runfiles.process_cmdline(os.getpid()))
    assert not runfiles.same_process(os.getpid(), own + 1)
