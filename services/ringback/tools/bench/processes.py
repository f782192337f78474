"""Starting roles as processes for a benchmark, and reading their peak memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ringback.runtime.ports import wait_for_port
from ringback.supervisor import RUNNING_LINE

START_TIMEOUT_S = 60.0


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as handle:  # the child has its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            env={**os.environ, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


#: How often a starting process's log is looked at.
POLL_S = 0.2


def wait_until_running(
    process: subprocess.Popen[bytes], log: Path, timeout_s: float = START_TIMEOUT_S, line: str = RUNNING_LINE
) -> None:
    """Returns once `ringback run` (logging to ``log``) says it is running; RuntimeError, with the log's
    end, when it exits or does not say so within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    marker = line.encode()
    while marker not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            ended = f"exited with {process.returncode}" if process.returncode is not None else "did not start"
            tail = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{process.args!r} {ended} (log {log}):\n{tail}")
        time.sleep(POLL_S)


def wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    if not wait_for_port("127.0.0.1", port, START_TIMEOUT_S) or process.poll() is not None:
        raise RuntimeError(f"{process.args!r} did not start listening on {port}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process, in MiB."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    """Resident memory now (VmRSS), in MiB; 0 once the process is gone."""
    try:
        return _status_mb(pid, "VmRSS")
    except OSError:
        return 0.0


class MemorySampler:
    """Samples the resident memory of some processes every ``interval_s`` on a thread of its own, so
    a report can show whether a role's memory levels off under sustained load or keeps growing."""

    def __init__(self, pids: dict[str, int], interval_s: float) -> None:
        self.pids = pids
        self.interval_s = interval_s
        self.samples: dict[str, list[float]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for name, pid in self.pids.items():
                self.samples[name].append(round(rss_mb(pid), 1))
