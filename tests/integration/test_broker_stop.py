"""The embedded broker stops with `ringback run`, however `ringback run` is stopped.

Each test stops a real `ringback run` one way — a stop signal to the process group of
`timeout 900 make run` (what a service manager or a container runtime sends), Ctrl-C to its group, a
stop asked twice, SIGKILL — or leaves a broker behind on purpose, and then looks in /proc: no broker of
that data dir may remain (by the owner mark in its environment or by its listening address), and, where
the roles are checked, none of the edge, normalizer and sink processes its run files named.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ringback.runtime import runfiles
from ringback.runtime.broker import OWNER_ENV
from ringback.runtime.lifecycle import REPEAT_WINDOW_S
from ringback.supervisor import ROLES, STOP_GRACE_S
from ringback.tools.bench.processes import wait_until_running
from tests.cdr_traffic import role_pid
from tests.pipeline import START_TIMEOUT_S, STOP_TIMEOUT_S, Pipeline, wait_for_text

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
#: make's install stamp, named as old so that `make run` never reinstalls anything.
INSTALL_STAMP = ".venv/.installed-stamp"
GONE_TIMEOUT_S = 15.0
POLL_S = 0.1


def brokers_of(run_dir: Path, bootstrap: str | None) -> list[int]:
    """Live processes that are a broker of this data dir: marked with it in their environment, or
    listening where its run file said."""
    mark = f"{OWNER_ENV}={run_dir.resolve()}".encode()
    listener = f"tcp://{bootstrap}" if bootstrap else None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        cmdline = runfiles.process_cmdline(pid) or []
        is_broker = bool(cmdline) and "broker" in cmdline and "--listener-url" in cmdline
        if not is_broker or runfiles.process_started(pid) is None:  # gone, or a zombie
            continue
        if mark in environ or (listener is not None and listener in cmdline):
            found.append(pid)
    return found


def wait_no_broker(run_dir: Path, bootstrap: str | None) -> None:
    deadline = time.monotonic() + GONE_TIMEOUT_S
    while (left := brokers_of(run_dir, bootstrap)) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    assert not left, f"brokers of {run_dir} still running: {left}"


def role_processes(pipeline: Pipeline) -> dict[str, tuple[int, int | None]]:
    """(pid, start time) of the edge, normalizer and sink of a started pipeline, as their run files name
    them: a pid with another start time later is another process."""
    pids = {role: role_pid(pipeline, role) for role in ROLES}
    return {role: (pid, runfiles.process_started(pid)) for role, pid in pids.items()}


def wait_gone(processes: dict[str, tuple[int, int | None]], timeout_s: float = GONE_TIMEOUT_S) -> None:
    """Every one of ``processes`` exits within ``timeout_s`` (a zombie has exited); those that do not are
    killed, and named."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = {role: pid for role, (pid, started) in processes.items() if runfiles.process_started(pid) == started}
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    for pid in left.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"still running {timeout_s:g} s later: {left}"


def fields(line: str) -> dict[str, str]:
    """The key=value pairs of a console log line."""
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def bootstrap_of(data_dir: Path) -> str:
    return str(runfiles.read(data_dir / "run", "run")["kafka_bootstrap"])  # type: ignore[index]


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(tmp_path / "data")
    yield running
    running.stop()


def test_a_stop_signal_to_the_group_of_timeout_make_run_stops_the_broker(tmp_path: Path) -> None:
    """Measured before: the roles stopped, the broker stayed, holding its port (`timeout` and `make`
    pass the signal on, so `ringback run` got it three times, and the repeat killed it on the spot)."""
    data_dir = tmp_path / "data"
    log_path = tmp_path / "make-run.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGBACK_")}
    env.update(RINGBACK_DATA_DIR=str(data_dir), RINGBACK_PORT="0", PYTHONPATH=str(REPO_ROOT / "services"))
    with open(log_path, "wb") as log:
        group = subprocess.Popen(
            ["timeout", "900", "make", "-s", "-C", str(REPO_ROOT), "-o", INSTALL_STAMP, "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        wait_until_running(group, log_path, START_TIMEOUT_S)
        bootstrap = bootstrap_of(data_dir)
        assert brokers_of(data_dir / "run", bootstrap)
        os.killpg(group.pid, signal.SIGTERM)
        # The copies `timeout` and `make` pass on may come after the first was handled: send one then.
        wait_for_text(log_path, "stop requested", timeout_s=STOP_TIMEOUT_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group.pid, signal.SIGTERM)
        group.wait(STOP_TIMEOUT_S)
    finally:
        if group.poll() is None:
            os.killpg(group.pid, signal.SIGKILL)
            group.wait()
    output = log_path.read_text(errors="replace")
    assert "embedded broker stopped" in output, output
    assert "role stopped" in output
    wait_no_broker(data_dir / "run", bootstrap)


def test_a_stop_asked_twice_kills_the_roles_but_still_stops_the_broker(pipeline: Pipeline) -> None:
    """The sink cannot stop (SIGSTOP): the first SIGTERM would wait STOP_GRACE_S for it; the second,
    asked later, has it killed at once, and the broker is still stopped."""
    pipeline.start()
    assert pipeline.process is not None
    bootstrap = pipeline.bootstrap
    os.kill(role_pid(pipeline, "sink"), signal.SIGSTOP)
    pipeline.process.send_signal(signal.SIGTERM)
    asked_at = time.monotonic()
    pipeline.wait_for_log("role stopped", timeout_s=STOP_GRACE_S)  # the edge: the stop is under way
    while time.monotonic() - asked_at <= REPEAT_WINDOW_S:  # later than a repeat of the same request
        time.sleep(POLL_S)
    pipeline.process.send_signal(signal.SIGTERM)
    hurried_at = time.monotonic()
    pipeline.process.wait(STOP_TIMEOUT_S)
    assert time.monotonic() - hurried_at < STOP_GRACE_S / 2, "the second signal did not hurry the stop"
    log = pipeline.log()
    assert "killing the role instead of waiting for it" in log
    assert "embedded broker stopped" in log, log
    wait_no_broker(pipeline.data_dir / "run", bootstrap)


def test_ctrl_c_pressed_again_while_stopping_still_stops_the_broker(pipeline: Pipeline) -> None:
    """Ctrl-C, and Ctrl-C again once the stop is under way: the roles are not waited for, the broker is
    stopped all the same, and the exit is clean."""
    pipeline.start()
    assert pipeline.process is not None
    bootstrap = pipeline.bootstrap
    pipeline.process.send_signal(signal.SIGINT)
    asked_at = time.monotonic()
    pipeline.wait_for_log("stop requested", timeout_s=STOP_TIMEOUT_S)
    while time.monotonic() - asked_at <= REPEAT_WINDOW_S:  # later than a repeat of the same request
        time.sleep(POLL_S)
    pipeline.process.send_signal(signal.SIGINT)
    assert pipeline.process.wait(STOP_TIMEOUT_S) == 0
    log = pipeline.log()
    assert "embedded broker stopped" in log, log
    wait_no_broker(pipeline.data_dir / "run", bootstrap)


def test_ctrl_c_to_the_group_of_ringback_run_stops_the_roles_and_the_broker(tmp_path: Path) -> None:
    """Ctrl-C in the terminal of `ringback run`: one SIGINT to its whole process group. Roles and broker
    each have a session of their own, so it reaches `ringback run` alone, which stops them all, in order."""
    pipeline = Pipeline(tmp_path / "data", own_session=True)
    try:
        pipeline.start()
        assert pipeline.process is not None
        bootstrap = pipeline.bootstrap
        roles = role_processes(pipeline)
        os.killpg(pipeline.process.pid, signal.SIGINT)
        assert pipeline.process.wait(STOP_TIMEOUT_S) == 0
    finally:
        pipeline.stop()
    stopping = pipeline.log().rsplit("stop requested", 1)[-1]
    assert "signal=SIGINT" in stopping.splitlines()[0]
    stopped = [fields(line) for line in stopping.splitlines() if "role stopped" in line]
    assert [(f["role"], f["exit_code"]) for f in stopped] == [("edge", "0"), ("normalizer", "0"), ("sink", "0")]
    assert "role died" not in stopping and "role restarting" not in stopping, stopping
    assert "embedded broker stopped" in stopping, stopping
    wait_gone(roles, timeout_s=0)  # `ringback run` waited for each
    wait_no_broker(pipeline.data_dir / "run", bootstrap)


def test_sigkill_of_ringback_run_takes_the_broker_and_the_roles_with_it(pipeline: Pipeline) -> None:
    pipeline.start()
    assert pipeline.process is not None
    bootstrap = pipeline.bootstrap
    broker_pid = int(pipeline.run_file("run")["broker_pid"])
    roles = role_processes(pipeline)
    pipeline.process.kill()
    pipeline.process.wait()
    wait_no_broker(pipeline.data_dir / "run", bootstrap)
    assert runfiles.process_started(broker_pid) is None
    wait_gone(roles)


def leave_a_broker(run_dir: Path, from_thread: bool = False, tied: bool = False) -> subprocess.Popen[bytes]:
    """A process that starts a broker owned by ``run_dir`` and reports its pid, then waits on stdin."""
    start = f"EmbeddedBroker(owner_dir=Path({str(run_dir)!r}), tied_to_parent={tied}).start()"
    body = f"t = threading.Thread(target=lambda: {start}); t.start(); t.join()" if from_thread else start
    script = (
        "import sys, threading; from pathlib import Path; from ringback.runtime.broker import EmbeddedBroker; "
        f"{body}; print('started', flush=True); sys.stdin.read()"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )
    assert owner.stdout is not None
    for line in owner.stdout:  # the broker's own log lines come first
        if line.strip() == b"started":
            return owner
    owner.wait()
    raise AssertionError(f"the broker's owner exited with {owner.returncode}")


def test_a_broker_left_by_an_earlier_run_is_stopped_by_the_next(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    earlier = leave_a_broker((data_dir / "run").resolve())
    earlier.kill()  # its owner gone without stopping it, as when a broker outlived its run
    earlier.wait()
    left = brokers_of(data_dir / "run", None)
    assert len(left) == 1
    pipeline = Pipeline(data_dir)
    try:
        pipeline.start()
        assert "stopping an embedded broker an earlier run left behind" in pipeline.log()
        assert runfiles.process_started(left[0]) is None
        assert brokers_of(data_dir / "run", None) == [int(pipeline.run_file("run")["broker_pid"])]
        bootstrap = pipeline.bootstrap
    finally:
        pipeline.stop()
    wait_no_broker(data_dir / "run", bootstrap)


def test_a_broker_started_from_another_thread_is_watched(tmp_path: Path) -> None:
    """From a thread that ends, the parent-death signal would kill the broker at once (the kernel ties it
    to the thread): the watcher keeps it alive while its owner lives, and stops it when the owner is killed."""
    run_dir = (tmp_path / "data" / "run").resolve()
    owner = leave_a_broker(run_dir, from_thread=True, tied=True)
    try:
        assert len(brokers_of(run_dir, None)) == 1  # the starting thread has ended: still there
    finally:
        owner.kill()
        owner.wait()
    wait_no_broker(run_dir, None)


def test_a_recycled_broker_replaces_the_old_one(pipeline: Pipeline) -> None:
    """The supervisor's recycle (the broker died here) leaves one broker, recorded for the next run."""
    pipeline.start()
    run_dir = pipeline.data_dir / "run"
    first = int(pipeline.run_file("run")["broker_pid"])
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + START_TIMEOUT_S
    while pipeline.log().count("embedded broker started") < 2:
        assert time.monotonic() < deadline, pipeline.log()
        time.sleep(POLL_S)
    second = runfiles.read(run_dir, "broker")
    assert second is not None and second["broker_pid"] != first
    assert brokers_of(run_dir, None) == [second["broker_pid"]]
    pipeline.stop()
    wait_no_broker(run_dir, None)


def test_recycles_for_memory_keep_one_broker_and_the_stop_ends_the_last(tmp_path: Path) -> None:
    """A limit below what the broker holds at start: the supervisor recycles it again and again (stopped
    from a worker thread, started again on the main one); never two at once, and the stop ends the last."""
    recycles = 3
    pipeline = Pipeline(tmp_path / "data", extra_args=["--embedded-broker-max-mb", "1"])
    run_dir = pipeline.data_dir / "run"
    pipeline.launch()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while pipeline.log().count("recycling it") < recycles:
            assert time.monotonic() < deadline, pipeline.log()
            assert len(brokers_of(run_dir, None)) <= 1
            time.sleep(POLL_S)
    finally:
        pipeline.stop()
    assert "embedded broker stopped" in pipeline.log().rsplit("stop requested", 1)[-1]
    wait_no_broker(run_dir, None)
