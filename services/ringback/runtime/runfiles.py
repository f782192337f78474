"""Small JSON files under ``<data_dir>/run`` through which running roles say how to reach them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write(run_dir: Path, name: str, data: dict[str, Any]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"{name}.json"
    tmp = run_dir / f".{name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds a secret token: owner only
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({**data, "pid": os.getpid()}, handle)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk: no half-written file left behind to fill it further
        raise
    return path


def read_live(run_dir: Path, name: str) -> dict[str, Any] | None:
    """The run file's content if it exists and the process that wrote it is still alive."""
    path = run_dir / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if pid_alive(int(data.get("pid", 0))) else None


def remove(run_dir: Path, name: str) -> None:
    path = run_dir / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if int(data.get("pid", 0)) == os.getpid():
            path.unlink()
    except (FileNotFoundError, json.JSONDecodeError, ValueError):
        pass


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_started(pid: int) -> int | None:
    """When the process started (clock ticks since boot, from /proc); None when it is gone or unknown.
    Together with the pid it names one process: a pid reused later has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # Field 22; the command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return None if fields[0] == "Z" else int(fields[19])
    except (IndexError, ValueError):
        return None


def process_cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode("utf-8", "replace").split("\0")[:-1] if raw else None


def same_process(pid: int, started: int | None, cmdline: list[str] | None = None) -> bool:
    """Whether ``pid`` is still the process recorded with this start time (and command line, if given)."""
    if pid <= 0 or started is None or process_started(pid) != started:
        return False
    return cmdline is None or process_cmdline(pid) == cmdline


def read(run_dir: Path, name: str) -> dict[str, Any] | None:
    """The run file's content, whether or not its writer still runs."""
    try:
        data = json.loads((run_dir / f"{name}.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
