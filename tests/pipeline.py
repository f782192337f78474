"""Driving a real `ringback run` (or single roles) as separate processes, the way a user does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ringback import sql
from ringback.runtime import runfiles
from ringback.sink import query_endpoint
from ringback.tools.bench.processes import wait_until_running

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0


def ringback(*args: str) -> list[str]:
    return [sys.executable, "-m", "ringback", *args]


def open_tenants_file(tenant_ids: tuple[str, ...], secret: str) -> str:
    """A tenants file of these tenants, each with ``secret``, anonymous callbacks still taken."""
    entries = "".join(f'[[tenants]]\nid = "{tenant}"\nsecret = "{secret}"\n' for tenant in tenant_ids)
    return f"allow_anonymous = true\n{entries}"


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


#: How long one query of a test may take (the query's own limit is shorter).
SQL_TIMEOUT_S = 120.0


def sql_rows(data_dir: Path, query: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """`ringback sql --data-dir DIR "... FORMAT JSONEachRow"`, parsed. While the pipeline's sink runs (and
    no environment of its own is asked for), the query is sent to the sink's loopback query endpoint the
    way `ringback sql` sends it, without a new Python process for every look a wait takes; otherwise
    `ringback sql` itself runs."""
    text = f"{query} FORMAT JSONEachRow"
    running = runfiles.read_live(data_dir / "run", query_endpoint.RUN_FILE) if env is None else None
    if running is not None:
        try:
            out = sql.through_running_sink(running, text, query_endpoint.DEFAULT_FORMAT, SQL_TIMEOUT_S, {})
        except sql.QueryError as exc:
            raise AssertionError(str(exc)) from exc
    else:
        done = subprocess.run(
            ringback("sql", "--data-dir", str(data_dir), text), capture_output=True, timeout=SQL_TIMEOUT_S, env=env
        )
        assert done.returncode == 0, done.stderr.decode()
        out = done.stdout
    # Stored text is the vendors' bytes, which need not be UTF-8 (hostile bodies are kept as they came):
    # read with replacement characters, as the tests compare them.
    return [json.loads(line) for line in out.decode("utf-8", "replace").splitlines() if line.strip()]


#: What a wait on rows waits for: at least this many rows, or this to hold of them.
RowsDone = int | Callable[[list[dict[str, Any]]], bool]
WAIT_S = 60.0
POLL_S = 0.2


def wait_for_rows(data_dir: Path, query: str, done: RowsDone, timeout_s: float = WAIT_S) -> list[dict[str, Any]]:
    """The rows of ``query`` once ``done`` holds (at least that many rows, or the predicate); the rows read
    last when ``timeout_s`` runs out first: the caller asserts what it expects of them."""
    holds = (lambda rows: len(rows) >= done) if isinstance(done, int) else done
    deadline = time.monotonic() + timeout_s
    while not holds(rows := sql_rows(data_dir, query)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return rows


def wait_for_text(log_path: Path, text: str, times: int = 1, timeout_s: float = WAIT_S) -> str:
    """The log once ``text`` is in it (``times`` times); AssertionError with the log's end otherwise."""
    deadline = time.monotonic() + timeout_s
    while (log := log_path.read_text(errors="replace") if log_path.exists() else "").count(text) < times:
        assert time.monotonic() < deadline, f"{text!r} not logged {times} time(s):\n{log[-4000:]}"
        time.sleep(POLL_S)
    return log


def wait_for_run_file(
    data_dir: Path, name: str, process: subprocess.Popen[bytes] | None = None, timeout_s: float = WAIT_S
) -> dict[str, Any]:
    """The run file ``name`` once written (while ``process``, if given, still runs)."""
    path = data_dir / "run" / f"{name}.json"
    deadline = time.monotonic() + timeout_s
    while True:
        assert process is None or process.poll() is None, f"{name}: its process exited with {process.returncode}"
        try:
            found: dict[str, Any] = json.loads(path.read_text())
            return found
        except (FileNotFoundError, ValueError):
            assert time.monotonic() < deadline, f"no run file {path}"
            time.sleep(POLL_S)


@dataclass
class Pipeline:
    """`ringback run` in a child process, on free ports, with its own data directory."""

    data_dir: Path
    extra_args: list[str] = field(default_factory=list)
    #: In a session (and process group) of its own, as in a terminal: a signal to the group spares the tests.
    own_session: bool = False
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    launches: int = 0

    def start(self) -> Pipeline:
        return self.launch().wait_until_running()

    def launch(self) -> Pipeline:
        """Start `ringback run` without waiting for it (a restart on the same data dir logs to a new file)."""
        self.launches += 1
        self.log_path = (
            self.data_dir.parent / f"{self.data_dir.name}-run{'' if self.launches == 1 else f'-{self.launches}'}.log"
        )
        with open(self.log_path, "wb") as log:  # the child has its own copy of the descriptor
            env = {k: v for k, v in os.environ.items() if not k.startswith("RINGBACK_")}
            self.process = subprocess.Popen(
                ringback(
                    "run",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    "0",
                    "--kafka-partitions",
                    "2",
                    "--sink-batch-seconds",
                    "0.2",
                    "--ledger-interval-s",
                    "0.5",
                    "--sql-http-port",  # off unless a test asks for it: pipelines running at once share no port
                    "0",
                    *self.extra_args,
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=self.own_session,
            )
        return self

    def wait_until_running(self) -> Pipeline:
        assert self.process is not None and self.log_path is not None
        try:
            wait_until_running(self.process, self.log_path, START_TIMEOUT_S)
        except RuntimeError:
            self.stop()
            raise
        return self

    def all_pids(self) -> list[int]:
        """Every process of this pipeline: the supervisor, the embedded broker, the roles."""
        assert self.process is not None
        pids = [self.process.pid]
        for name, key in (("run", "broker_pid"), ("edge", "pid"), ("normalizer", "pid"), ("sink", "pid")):
            try:
                pid = self.run_file(name).get(key)
            except (FileNotFoundError, ValueError):
                continue
            if pid:
                pids.append(int(pid))
        return pids

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def wait_for_log(self, text: str, times: int = 1, timeout_s: float = WAIT_S) -> str:
        """The log of the current launch once ``text`` is in it ``times`` times (asserted)."""
        assert self.log_path is not None
        return wait_for_text(self.log_path, text, times, timeout_s)

    def run_file(self, name: str) -> dict[str, Any]:
        return json.loads((self.data_dir / "run" / f"{name}.json").read_text())

    @property
    def edge_url(self) -> str:
        return self.run_file("edge")["url"]

    @property
    def bootstrap(self) -> str:
        return self.run_file("run")["kafka_bootstrap"]

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


#: (topic, consumer group) of `ringback run`, in the order a callback passes them.
STAGES = (
    ("ringback.raw.v1", "ringback-normalizer"),
    ("ringback.normalized.v1", "ringback-sink"),
    ("ringback.dlq.v1", "ringback-sink"),
)


def wait_until_caught_up(pipeline: Pipeline, timeout_s: float = 90.0) -> None:
    """Returns once everything the edge acknowledged so far was published, normalized and stored: the
    edge's journal has nothing unpublished, and the normalizer and the sink have committed every record
    (each commits only what it has published or stored). What is not stored by then never will be."""
    import asyncio

    from tests.kafka_helpers import lag

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(pipeline.edge_url + "/readyz", timeout=30) as reply:
                readiness = reply.read()
        except urllib.error.HTTPError as exc:  # not ready (503) says the same
            readiness = exc.read()
        journal = json.loads(readiness)["journal"] or {}
        behind = {"edge journal": int(journal.get("unpublished", 0))}
        if not behind["edge journal"]:
            for topic, group in STAGES:
                behind[topic] = asyncio.run(lag(pipeline.bootstrap, group, topic))
        if not any(behind.values()):
            return
        assert time.monotonic() < deadline, f"not caught up after {timeout_s}s: {behind}"
        time.sleep(0.2)
