"""Starting roles as processes for a benchmark, and reading their peak memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ringback.runtime.ports import wait_for_port

START_TIMEOUT_S = 60.0


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = open(log, "ab")
    return subprocess.Popen([sys.executable, "-m", *args], env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    if not wait_for_port("127.0.0.1", port, START_TIMEOUT_S) or process.poll() is not None:
        raise RuntimeError(f"{process.args} did not start listening on {port}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
