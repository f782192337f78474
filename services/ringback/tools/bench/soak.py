"""`ringback soak` (`make soak`): `ringback run` for an hour under steady vendor traffic, every process's
memory sampled, to show that it levels off — and that nothing acknowledged was lost on the way.

Processes are sampled by role, the pid read again from the run files at every sample, because the
embedded broker is recycled when it holds too much memory (and the consumers restart with it). The
report gives, per process, the resident memory at the end of the warm-up, the highest after it, the
last sample and the growth rate after warm-up (least squares, MB per hour); the broker's recycles;
the journal's deepest point; and the zero-loss count.
"""

from __future__ import annotations

import asyncio
import csv
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ringback.config import Settings
from ringback.sql import run_sql
from ringback.tools import loadgen
from ringback.tools.bench import processes

PROCESSES = ("supervisor", "broker", "edge", "normalizer", "sink")
SAMPLE_S = 10.0
WARMUP_S = 600.0
SETTLE_TIMEOUT_S = 300.0
CONNECTIONS = 32
SECONDS_PER_HOUR = 3600.0


@dataclass
class Sample:
    at_s: float
    rss_mb: dict[str, float]
    journal_records: int


@dataclass
class Sampler:
    """Samples every process of a `ringback run` by role on a thread of its own."""

    data_dir: Path
    supervisor_pid: int
    interval_s: float
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def pids(self) -> dict[str, int]:
        found = {"supervisor": self.supervisor_pid}
        run_dir = self.data_dir / "run"
        for name, file, key in (
            ("broker", "run", "broker_pid"),
            ("edge", "edge", "pid"),
            ("normalizer", "normalizer", "pid"),
            ("sink", "sink", "pid"),
        ):
            try:
                found[name] = int(json.loads((run_dir / f"{file}.json").read_text())[key])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return found

    def journal_records(self) -> int:
        from ringback.pipeline_status import probe

        try:
            edge_url = json.loads((self.data_dir / "run" / "edge.json").read_text())["url"]
        except (OSError, ValueError, KeyError):
            return -1
        journal = probe("edge", edge_url).readiness.get("journal") or {}
        return int(journal.get("records", -1))

    def run(self) -> None:
        while not self._stop.wait(self.interval_s):
            rss = {name: round(processes.rss_mb(pid), 1) for name, pid in self.pids().items()}
            self.samples.append(Sample(time.monotonic() - self.started, rss, self.journal_records()))

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self.run, name="soak-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def growth_mb_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB), in MB per hour."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * SECONDS_PER_HOUR


def summarize(samples: list[Sample], warmup_s: float) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    for name in PROCESSES:
        series = [(s.at_s, s.rss_mb[name]) for s in samples if s.rss_mb.get(name)]
        before = [v for t, v in series if t <= warmup_s]
        after = [(t, v) for t, v in series if t > warmup_s]
        if not series:
            continue
        summary[name] = {
            "at_warmup_end_mb": before[-1] if before else series[0][1],
            "max_after_warmup_mb": max((v for _, v in after), default=0.0),
            "last_mb": series[-1][1],
            "growth_after_warmup_mb_per_hour": round(growth_mb_per_hour(after), 1),
        }
    return summary


def _stored(settings: Settings, tag: str) -> int:
    query = (
        f"SELECT count() AS n FROM ringback.events WHERE startsWith(coalesce(sid, call_id, request_id, ''), '{tag}') "
        f"OR startsWith(attributes['extend'], '{tag}') FORMAT JSONEachRow"
    )
    return int(json.loads(run_sql(settings, query, "JSONEachRow").splitlines()[0])["n"])


def run(
    results: Path,
    duration_s: float,
    rate: float,
    warmup_s: float = WARMUP_S,
    sample_s: float = SAMPLE_S,
    run_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``run_args``: more options for `ringback run` (e.g. a lower ``--embedded-broker-max-mb``)."""
    results.mkdir(parents=True, exist_ok=True)
    data_dir = results / "soak-data"
    log = results / "soak-run.log"
    pipeline = processes.spawn(
        ["ringback", "run", "--data-dir", str(data_dir), "--port", "0", "--log-level", "warning", *run_args], {}, log
    )
    settings = Settings(data_dir=str(data_dir))
    try:
        processes.wait_until_running(pipeline, log)
        edge_url = json.loads((data_dir / "run" / "edge.json").read_text())["url"]
        plan = loadgen.LoadPlan(
            url=edge_url,
            duration_s=duration_s,
            rate=rate,
            connections=CONNECTIONS,
            resend_share=0.05,
            malformed_share=0.01,
        )
        with Sampler(data_dir, pipeline.pid, sample_s) as sampler:
            summary = asyncio.run(loadgen.run(plan, show_progress=False))
            expected = summary.expected_events + summary.expected_replies
            stored, settle_deadline = 0, time.monotonic() + SETTLE_TIMEOUT_S
            while stored < expected and time.monotonic() < settle_deadline:
                stored = _stored(settings, plan.tag)
                time.sleep(2)
    finally:
        processes.stop(pipeline)
    text = log.read_text(errors="replace")
    report = {
        "duration_s": duration_s,
        "rate": rate,
        "warmup_s": warmup_s,
        "sent": summary.sent,
        "accepted": summary.accepted,
        "failed": summary.failed,
        "expected_events": expected,
        "stored_events": stored,
        "lost": max(0, expected - stored),
        "broker_recycles": text.count("recycling it"),
        "broker_deaths": text.count("embedded broker died"),
        "deepest_journal_records": max((s.journal_records for s in sampler.samples), default=0),
        "memory": summarize(sampler.samples, warmup_s),
    }
    (results / "soak.json").write_text(json.dumps(report, indent=2))
    with open(results / "soak-rss.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["at_s", *PROCESSES, "journal_records"])
        for s in sampler.samples:
            writer.writerow([round(s.at_s), *(s.rss_mb.get(name, "") for name in PROCESSES), s.journal_records])
    _chart(sampler.samples, warmup_s, results / "soak-rss.png")
    return report


def _chart(samples: list[Sample], warmup_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 5))
    for name in PROCESSES:
        points = [(s.at_s / 60, s.rss_mb[name]) for s in samples if s.rss_mb.get(name)]
        if points:
            axes.plot(*zip(*points, strict=True), label=name)
    axes.axvline(warmup_s / 60, color="grey", linestyle="--", label="end of warm-up")
    axes.set_xlabel("minutes")
    axes.set_ylabel("resident memory, MB")
    axes.set_title("ringback run under steady load: memory per process")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def render(report: dict[str, Any]) -> str:
    lines = [
        (
            f"soak: {report['duration_s'] / 60:.0f} min at {report['rate']:g} callbacks/s: sent {report['sent']}, "
            f"accepted {report['accepted']}, "
            f"failed {report['failed']}; stored {report['stored_events']} of {report['expected_events']} expected "
            f"events, lost {report['lost']}"
        ),
        (
            f"broker recycled {report['broker_recycles']} times (died {report['broker_deaths']}); journal at most "
            f"{report['deepest_journal_records']} callbacks"
        ),
        f"{'process':<11} {'warm-up end':>12} {'max after':>10} {'last':>8} {'growth MB/h':>12}",
    ]
    for name, m in report["memory"].items():
        lines.append(
            f"{name:<11} {m['at_warmup_end_mb']:>12.0f} {m['max_after_warmup_mb']:>10.0f} {m['last_mb']:>8.0f} "
            f"{m['growth_after_warmup_mb_per_hour']:>12.1f}"
        )
    return "\n".join(lines)
