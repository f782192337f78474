"""End to end: `ringback run` under sustained vendor traffic from `ringback loadgen`; callbacks/s, the
time from each HTTP reply to its row being queryable, a zero-loss check, and each role's peak memory."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from ringback.config import Settings
from ringback.sql import run_sql
from ringback.tools import loadgen
from ringback.tools.bench import processes

SETTLE_TIMEOUT_S = 120.0
ROLES = ("edge", "normalizer", "sink")
MEMORY_SAMPLE_S = 5.0
CONNECTIONS = 64


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def _rows(settings: Settings, query: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in run_sql(settings, query + " FORMAT JSONEachRow", "JSONEachRow").splitlines()
        if line.strip()
    ]


def run(workdir: Path, duration_s: float, rate: float) -> dict[str, Any]:
    data_dir = workdir / "e2e"
    settings = Settings(data_dir=str(data_dir))
    log = workdir / "e2e.log"
    # The load generator sends from one address at full speed: the stage measures the pipeline, not its limiter.
    pipeline = processes.spawn(
        [
            "ringback",
            "run",
            "--data-dir",
            str(data_dir),
            "--port",
            "0",
            "--log-level",
            "warning",
            "--anonymous-rate-limit-per-s",
            "0",
        ],
        {},
        log,
    )
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
        roles = {role: int(json.loads((data_dir / "run" / f"{role}.json").read_text())["pid"]) for role in ROLES}
        load_started = time.time()
        with processes.MemorySampler(roles, MEMORY_SAMPLE_S) as memory:
            summary = asyncio.run(loadgen.run(plan, show_progress=False))

        # Loadgen tags every body with the run: in a vendor id, or (SMS replies, which have none) in `extend`.
        tag_filter = (
            f"(startsWith(coalesce(sid, call_id, request_id, ''), '{plan.tag}') OR startsWith(attributes['extend'], "
            f"'{plan.tag}'))"
        )
        expected = summary.expected_events + summary.expected_replies
        stored, settle_deadline = 0, time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < settle_deadline:
            stored = int(_rows(settings, f"SELECT count() AS n FROM ringback.events WHERE {tag_filter}")[0]["n"])
            if stored >= expected:
                break
            time.sleep(1)

        # Until the last of them was queryable: the rate the whole pipeline kept up with, backlog included.
        last_ms = _rows(
            settings,
            f"SELECT toUnixTimestamp64Milli(max(inserted_at)) AS at FROM ringback.event_copies WHERE {tag_filter}",
        )[0]["at"]
        drained_s = max(summary.elapsed_s, int(last_ms) / 1000 - load_started)
        latencies = []
        for row in _rows(
            settings,
            (
                "SELECT sid, toUnixTimestamp64Milli(min(inserted_at)) AS at FROM ringback.event_copies WHERE "
                f"startsWith(sid, '{plan.tag}') GROUP BY sid"
            ),
        ):
            key = f"tencent/sms-status#{row['sid'].split('-')[1]}"
            replied = summary.accepted_at.get(key)
            if replied is not None and key not in summary.resent_keys:
                latencies.append(max(0.0, int(row["at"]) / 1000 - replied))
        peaks: dict[str, Any] = {}
        for role, pid in roles.items():
            peaks[f"{role}_peak_mb"] = round(processes.peak_rss_mb(pid), 1)
            peaks[f"{role}_rss_mb_over_time"] = memory.samples[role]
    finally:
        processes.stop(pipeline)
    return {
        "duration_s": duration_s,
        "offered_rate": rate or "max",
        "sent": summary.sent,
        "accepted": summary.accepted,
        "failed": summary.failed,
        "e2e_cps": round(summary.accepted / summary.elapsed_s),
        "drained_s": round(drained_s, 1),
        "e2e_drained_cps": round(summary.accepted / drained_s),
        "reply_p50_ms": round(summary.percentile(50) * 1000, 1),
        "reply_p99_ms": round(summary.percentile(99) * 1000, 1),
        "expected_events": expected,
        "stored_events": stored,
        "lost": max(0, expected - stored),
        "queryable_p50_s": round(_percentile(latencies, 50), 3),
        "queryable_p99_s": round(_percentile(latencies, 99), 3),
        **peaks,
    }
