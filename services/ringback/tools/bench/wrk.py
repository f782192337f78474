"""HTTP load from wrk (Debian's `wrk`), a C load generator, so that the client is not the bottleneck."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# A level-2 long bracket, so a body ending in "]" (a JSON array) cannot close the string early;
# wrk only warns about a script it cannot load and then sends plain GETs instead.
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
"""
#: Beyond the run's own duration, how long wrk may take to start and to print its report.
MARGIN_S = 60.0


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    non_2xx: int = 0
    cpu_s: float = 0.0  # wrk's own user + system time, from the OS's accounting of the child
    elapsed_s: float = 0.0

    @property
    def accepted(self) -> int:
        """Requests answered 2xx (wrk counts a request once its reply is read)."""
        return self.requests - self.non_2xx

    @property
    def cpu_us_per_request(self) -> float:
        return round(self.cpu_s / max(1, self.requests) * 1e6, 2)


def available() -> bool:
    return shutil.which("wrk") is not None


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run(url: str, body: bytes, connections: int, duration_s: float, threads: int = 1) -> WrkResult:
    """The same POST body on every request."""
    if "]==]" in body.decode():
        raise ValueError("the request body cannot be put in the wrk script")
    return run_script(url, LUA % body.decode(), connections, duration_s, threads)


def run_script(url: str, script: str, connections: int, duration_s: float, threads: int = 1) -> WrkResult:
    """wrk driven by a Lua script; its CPU time is read from the OS when it is reaped."""
    with tempfile.TemporaryDirectory() as tmp:
        script_path, out_path, err_path = Path(tmp) / "load.lua", Path(tmp) / "out", Path(tmp) / "err"
        script_path.write_text(script)
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, int(duration_s))}s",
            "--latency",
            "-s",
            str(script_path),
            url,
        ]
        started = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            process = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        status, usage = _reap(process, duration_s + MARGIN_S)
        elapsed = time.monotonic() - started
        stdout, stderr = out_path.read_text(), err_path.read_text()
    if status != 0 or stderr.strip():
        raise RuntimeError(f"wrk failed: {stderr.strip() or status}")
    result = parse(stdout)
    result.cpu_s = usage.ru_utime + usage.ru_stime
    result.elapsed_s = elapsed
    return result


def _reap(process: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, resource.struct_rusage]:
    """Waits for wrk with wait4, which returns the child's resource usage with its status."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage
        if time.monotonic() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            raise RuntimeError(f"wrk did not finish within {timeout_s:.0f} s")
        time.sleep(0.1)


def parse(out: str) -> WrkResult:
    """wrk's report (with --latency): requests/s, p50 and p99, requests, non-2xx and socket errors."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = int(errors_match.group(1)) if errors_match else 0
    errors = non_2xx + (sum(int(x) for x in socket_errors.groups()) if socket_errors else 0)
    return WrkResult(rps, p50, p99, requests, errors, non_2xx)
