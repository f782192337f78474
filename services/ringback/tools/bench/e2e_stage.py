"""End to end: `ringback run` (its defaults, the per-address rate limit off) under sustained load; the
pipeline's CPU per stored callback from the OS's accounting, per role; callbacks/s accepted and stored;
reply p99, reply → queryable latency, a zero-loss check, and each role's memory.

The load comes from wrk with one Lua script of unique callbacks (callback_mix), which costs a few µs
of CPU a request and so leaves the two cores to the pipeline; where wrk is missing, from `ringback
loadgen` (vendor stories, resends and malformed bodies; ~100 µs a request), and the report says so.
The measured window runs from the load's start until every accepted callback is stored.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ringback.config import Settings
from ringback.sql import run_sql
from ringback.tools import loadgen
from ringback.tools.bench import callback_mix, cpu, processes, wrk

SETTLE_TIMEOUT_S = 120.0
SETTLE_POLL_S = 1.0
ROLES = ("edge", "normalizer", "sink")
CPU_ROLES = ("edge", "normalizer", "sink", "broker", "supervisor", "ended_unsampled")
MEMORY_SAMPLE_S = 5.0
CONNECTIONS = 64


@dataclass
class Load:
    """What a load generator reports about its run."""

    generator: str  # "wrk" or "loadgen"
    tag: str  # in every vendor id of the run's bodies
    sent: int
    accepted: int  # answered 2xx
    failed: int
    elapsed_s: float
    reply_p50_ms: float
    reply_p99_ms: float
    cpu_s: float  # the generator's own CPU time
    expected_callbacks: int  # accepted callbacks that must be stored; 0 where not known (loadgen)
    expected_events: int  # wrk: 0, for the events are counted from the callbacks stored (see _stored)


def _rows(settings: Settings, query: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in run_sql(settings, query + " FORMAT JSONEachRow", "JSONEachRow").splitlines()
        if line.strip()
    ]


def _tag_filter(tag: str) -> str:
    # Loadgen's SMS replies have no vendor id: their tag is in `extend`.
    return f"(startsWith(coalesce(sid, call_id, request_id, ''), '{tag}') OR startsWith(attributes['extend'], '{tag}'))"


@dataclass(frozen=True)
class Stored:
    callbacks: int  # a callback republished by the journal after a broker recycle counts once
    events: int  # unique events
    events_due: int  # the events the stored callbacks make (wrk's mix: so many per route)


def _stored(settings: Settings, tag: str) -> Stored:
    by_route = _rows(
        settings,
        "SELECT route, uniqExact(ingest_id) AS callbacks, uniqExact(event_id) AS events FROM ringback.event_copies "
        f"WHERE {_tag_filter(tag)} GROUP BY route",
    )
    per_callback = callback_mix.EVENTS_PER_ROUTE
    return Stored(
        callbacks=sum(int(row["callbacks"]) for row in by_route),
        events=sum(int(row["events"]) for row in by_route),
        events_due=sum(int(row["callbacks"]) * per_callback.get(row["route"], 1) for row in by_route),
    )


def _wrk_load(edge_url: str, duration_s: float, connections: int) -> Load:
    tag = "wb" + uuid.uuid4().hex[:8]
    script = callback_mix.script(tag, urlsplit(edge_url).netloc)
    # One thread: every connection in one event loop, so that each wake-up reads several replies.
    result = wrk.run_script(edge_url, script, connections, duration_s, threads=1)
    return Load(
        generator="wrk",
        tag=tag,
        sent=result.requests,
        accepted=result.accepted,
        failed=result.errors,
        elapsed_s=max(result.elapsed_s, duration_s),
        reply_p50_ms=result.p50_ms,
        reply_p99_ms=result.p99_ms,
        cpu_s=result.cpu_s,
        expected_callbacks=result.accepted,
        expected_events=0,
    )


def _loadgen_load(edge_url: str, duration_s: float, rate: float, connections: int) -> Load:
    plan = loadgen.LoadPlan(
        url=edge_url,
        duration_s=duration_s,
        rate=rate,
        connections=connections,
        resend_share=0.05,
        malformed_share=0.01,
    )
    before = resource.getrusage(resource.RUSAGE_SELF)
    summary = asyncio.run(loadgen.run(plan, show_progress=False))
    after = resource.getrusage(resource.RUSAGE_SELF)
    return Load(
        generator="loadgen",
        tag=plan.tag,
        sent=summary.sent,
        accepted=summary.accepted,
        failed=summary.failed,
        elapsed_s=summary.elapsed_s,
        reply_p50_ms=round(summary.percentile(50) * 1000, 1),
        reply_p99_ms=round(summary.percentile(99) * 1000, 1),
        cpu_s=after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        expected_callbacks=0,  # which of its accepted bodies store nothing (malformed) is not told apart
        expected_events=summary.expected_events + summary.expected_replies,
    )


def _wait_stored(settings: Settings, load: Load) -> Stored:
    """Polls the store (through the sink's query endpoint: a little sink CPU a second) until every
    accepted callback is stored, or SETTLE_TIMEOUT_S."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        stored = _stored(settings, load.tag)
        done = stored.callbacks >= load.expected_callbacks and stored.events >= _events_expected(load, stored)
        if done or time.monotonic() > deadline:
            return stored
        time.sleep(SETTLE_POLL_S)


def _events_expected(load: Load, stored: Stored) -> int:
    return load.expected_events if load.generator == "loadgen" else stored.events_due


def _latency(settings: Settings, tag: str) -> dict[str, float]:
    """Edge receive → first stored copy, per event (the reply leaves a few ms after the receive)."""
    row = _rows(
        settings,
        "SELECT quantiles(0.5, 0.99)(delay) AS q, max(last) AS last_ms FROM (SELECT "
        "toUnixTimestamp64Milli(min(inserted_at)) - toUnixTimestamp64Milli(min(received_at)) AS delay, "
        "toUnixTimestamp64Milli(max(inserted_at)) AS last FROM ringback.event_copies "
        f"WHERE {_tag_filter(tag)} GROUP BY event_id)",
    )[0]
    p50, p99 = (round(float(v) / 1000, 3) for v in row["q"])
    return {"queryable_p50_s": p50, "queryable_p99_s": p99, "last_stored_ms": float(row["last_ms"])}


def _cpu_report(account: cpu.CpuAccount, callbacks: int, load: Load) -> dict[str, Any]:
    spent = account.seconds_by_role()
    per = max(1, callbacks)
    report: dict[str, Any] = {
        f"e2e_cpu_us_{role}": round(spent.get(role, 0.0) / per * 1e6, 1) for role in CPU_ROLES if role in spent
    }
    report["e2e_cpu_us"] = round(sum(spent.values()) / per * 1e6, 1)
    report["cpu_s_by_role"] = {role: round(seconds, 2) for role, seconds in spent.items()}
    report["processes_by_role"] = account.processes_by_role()
    report["loadgen_cpu_s"] = round(load.cpu_s, 2)
    report["loadgen_cpu_us_per_request"] = round(load.cpu_s / max(1, load.sent) * 1e6, 1)
    return report


def _start_pipeline(data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    # The load comes from one address at full speed: the stage measures the pipeline, not its limiter.
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
    processes.wait_until_running(pipeline, log)
    return pipeline


def run(workdir: Path, duration_s: float, rate: float, connections: int = CONNECTIONS) -> dict[str, Any]:
    """``rate`` bounds loadgen only (0: full speed); wrk always sends at full speed."""
    data_dir = workdir / "e2e"
    settings = Settings(data_dir=str(data_dir))
    log = workdir / "e2e.log"
    use_wrk = wrk.available()
    pipeline = _start_pipeline(data_dir, log)
    try:
        run_dir = data_dir / "run"
        edge_url = json.loads((run_dir / "edge.json").read_text())["url"]
        roles = {role: int(json.loads((run_dir / f"{role}.json").read_text())["pid"]) for role in ROLES}
        account = cpu.CpuAccount(pipeline.pid, run_dir)
        load_started = time.time()
        with processes.MemorySampler(roles, MEMORY_SAMPLE_S) as memory:
            account.start()
            try:
                if use_wrk:
                    load = _wrk_load(edge_url, duration_s, connections)
                else:
                    load = _loadgen_load(edge_url, duration_s, rate, connections)
                stored = _wait_stored(settings, load)
            finally:
                account.stop()
        latency = _latency(settings, load.tag)
        drained_s = max(load.elapsed_s, latency.pop("last_stored_ms") / 1000 - load_started)
        peaks: dict[str, Any] = {}
        for role, pid in roles.items():
            peaks[f"{role}_peak_mb"] = round(processes.peak_rss_mb(pid), 1)
            peaks[f"{role}_rss_mb_over_time"] = memory.samples[role]
    finally:
        processes.stop(pipeline)
    lost_events = max(0, _events_expected(load, stored) - stored.events)
    return {
        "load_generator": load.generator,
        "load_generator_note": (
            "wrk, one Lua script of unique callbacks (callback_mix)"
            if use_wrk
            else "wrk not installed: ringback loadgen instead (its own CPU is far higher)"
        ),
        "duration_s": duration_s,
        "connections": connections,
        "offered_rate": "max" if use_wrk or not rate else rate,
        "sent": load.sent,
        "accepted": load.accepted,
        "failed": load.failed,
        "e2e_cps": round(load.accepted / load.elapsed_s),
        "drained_s": round(drained_s, 1),
        "e2e_drained_cps": round(load.accepted / drained_s),
        "e2e_stored_cps": round(stored.callbacks / drained_s),
        "reply_p50_ms": load.reply_p50_ms,
        "reply_p99_ms": load.reply_p99_ms,
        "expected_callbacks": load.expected_callbacks,
        "stored_callbacks": stored.callbacks,
        "expected_events": _events_expected(load, stored),
        "stored_events": stored.events,
        # wrk: accepted 200s against callbacks stored; loadgen: the unique events its bodies make.
        "lost": max(0, load.expected_callbacks - stored.callbacks) if use_wrk else lost_events,
        "lost_events": lost_events,
        **latency,
        **_cpu_report(account, stored.callbacks, load),
        **peaks,
    }
