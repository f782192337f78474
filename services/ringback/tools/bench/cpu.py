"""CPU time from the OS's accounting (/proc/<pid>/stat), per role of a running `ringback run`.

The roles' pids are read from the run files every sample, so a broker recycled (or a role restarted)
mid-window is followed: the new process counts from its birth. What a process that ended in the
window spent between its last sample and its end is recovered from the supervisor's count of its
reaped children (cutime + cstime), as one figure that belongs to no single role.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
ROLE_FILES = ("edge", "normalizer", "sink")
SAMPLE_S = 1.0


@dataclass(frozen=True)
class ProcessTimes:
    own_s: float  # utime + stime: every thread of the process
    reaped_children_s: float  # cutime + cstime: children it has waited for


def times(pid: int) -> ProcessTimes | None:
    """None once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces; fields from the 3rd on
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return ProcessTimes((utime + stime) / TICKS_PER_S, (cutime + cstime) / TICKS_PER_S)


def role_pids(run_dir: Path) -> dict[int, str]:
    """pid → role, from the run files (one being rewritten is skipped until the next sample)."""
    found: dict[int, str] = {}
    for role in ROLE_FILES:
        try:
            found[int(json.loads((run_dir / f"{role}.json").read_text())["pid"])] = role
        except (OSError, ValueError, KeyError, TypeError):
            continue
    try:
        broker = json.loads((run_dir / "run.json").read_text()).get("broker_pid")
    except (OSError, ValueError):
        broker = None
    if broker:
        found[int(broker)] = "broker"
    return found


@dataclass
class _Seen:
    role: str
    first_s: float
    last_s: float
    alive: bool = True


@dataclass
class CpuAccount:
    """Samples the roles' CPU on a thread of its own from ``start()`` to ``stop()``: the measured window."""

    supervisor_pid: int
    run_dir: Path
    interval_s: float = SAMPLE_S
    seen: dict[int, _Seen] = field(default_factory=dict)
    _supervisor_start: ProcessTimes | None = None
    _supervisor_end: ProcessTimes | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._supervisor_start = times(self.supervisor_pid)
        self._sample(born_in_window=False)
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample(born_in_window=True)
        self._supervisor_end = times(self.supervisor_pid)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample(born_in_window=True)

    def _sample(self, born_in_window: bool) -> None:
        pids = role_pids(self.run_dir)
        with self._lock:
            for pid in set(pids) | {pid for pid, seen in self.seen.items() if seen.alive}:
                now = times(pid)
                known = self.seen.get(pid)
                if now is None:
                    if known is not None:
                        known.alive = False
                    continue
                if known is None:
                    # A process first seen after the window opened was born in it: all its CPU counts.
                    first = 0.0 if born_in_window else now.own_s
                    self.seen[pid] = _Seen(pids[pid], first, now.own_s)
                else:
                    known.last_s = now.own_s

    def seconds_by_role(self) -> dict[str, float]:
        """CPU seconds spent in the window: each role's, the supervisor's own, and ``ended_unsampled``
        (what processes that ended in the window spent after their last sample)."""
        spent: dict[str, float] = {}
        for seen in self.seen.values():
            spent[seen.role] = spent.get(seen.role, 0.0) + seen.last_s - seen.first_s
        start, end = self._supervisor_start, self._supervisor_end
        if start is not None and end is not None:
            spent["supervisor"] = end.own_s - start.own_s
            ended_sampled = sum(seen.last_s for seen in self.seen.values() if not seen.alive)
            reaped = end.reaped_children_s - start.reaped_children_s
            spent["ended_unsampled"] = max(0.0, reaped - ended_sampled)
        return spent

    def processes_by_role(self) -> dict[str, int]:
        """How many processes each role had in the window (more than one: recycled or restarted)."""
        counts: dict[str, int] = {}
        for seen in self.seen.values():
            counts[seen.role] = counts.get(seen.role, 0) + 1
        return counts
