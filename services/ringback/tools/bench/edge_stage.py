"""Edge throughput and latency at 64 connections: the real edge (publishing to the real broker, one
and several processes on one port) against a bare aiohttp handler that gives the same reply; and the
edge with its journal on (every callback fsync'd before the reply) and with tenants on (the secret
checked on every request), each beside the plain edge in the same run, so their cost is a ratio."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from ringback.config import Settings
from ringback.runtime import kafka
from ringback.runtime.ports import free_port
from ringback.tools.bench import cpu, processes, wrk

CONNECTIONS = 64
BENCH_TENANTS = 100  # a tenants file of this many; the requests go to one of them
BENCH_SECRET = "bench-secret-7d3e9a1c5b2f"
SMS_BODY = orjson.dumps(
    [
        {
            "user_receive_time": "2026-11-21 08:00:00",
            "nationcode": "86",
            "mobile": "13800138000",
            "report_status": "SUCCESS",
            "errmsg": "DELIVRD",
            "description": "ok",
            "sid": "bench-edge",
        }
    ]
)
ROUTE = "/callbacks/tencent/sms-status"


def run(workdir: Path, bootstrap: str, duration_s: float, edge_processes: int = 2) -> dict[str, Any]:
    if not wrk.available():
        return {"skipped": "wrk not installed (make bench installs it)"}
    settings = Settings(kafka_bootstrap=bootstrap, data_dir=str(workdir / "edge"))
    asyncio.run(kafka.ensure_topics(settings))
    log = workdir / "edge.log"
    # wrk sends from one address, far faster than a vendor would: the stage measures the edge, not its limiter.
    env = {**settings.as_env(), "RINGBACK_LOG_LEVEL": "warning", "RINGBACK_ANONYMOUS_RATE_LIMIT_PER_S": "0"}

    base_port = free_port()
    bare = processes.spawn(["ringback.tools.bench.bare_server", str(base_port)], env, log)
    try:
        processes.wait_listening(bare, base_port)
        baseline, baseline_cpu_us = _under_wrk(bare.pid, f"http://127.0.0.1:{base_port}{ROUTE}", duration_s)
    finally:
        processes.stop(bare)

    single, single_peak, single_cpu_us = _one_edge(env, log, duration_s, ROUTE, [])
    journaled, _, _ = _one_edge(
        env, log, duration_s, ROUTE, ["--edge-journal", "on", "--data-dir", str(workdir / "edge-journal")]
    )
    tenants_file = _tenants_file(workdir)
    with_tenants, _, _ = _one_edge(
        env, log, duration_s, f"/t/tenant-0/{BENCH_SECRET}{ROUTE}", ["--tenants-file", str(tenants_file)]
    )

    many_port = free_port()
    edges = [
        processes.spawn(["ringback", "edge", "--port", str(many_port), "--reuse-port", "true"], env, log)
        for _ in range(edge_processes)
    ]
    try:
        for process in edges:
            processes.wait_listening(process, many_port)
        multi = wrk.run(f"http://127.0.0.1:{many_port}{ROUTE}", SMS_BODY, CONNECTIONS, duration_s, threads=2)
    finally:
        for process in edges:
            processes.stop(process)

    return {
        "connections": CONNECTIONS,
        "baseline_rps": round(baseline.rps),
        "baseline_p50_ms": baseline.p50_ms,
        "baseline_p99_ms": baseline.p99_ms,
        "baseline_errors": baseline.errors,
        "baseline_cpu_us_per_req": baseline_cpu_us,
        "edge_rps": round(single.rps),
        "edge_p50_ms": single.p50_ms,
        "edge_p99_ms": single.p99_ms,
        "edge_ratio": round(single.rps / baseline.rps, 3) if baseline.rps else 0.0,
        "edge_errors": single.errors,
        "edge_cpu_us_per_req": single_cpu_us,
        "wrk_cpu_us_per_req": single.cpu_us_per_request,
        f"edge_x{edge_processes}_rps": round(multi.rps),
        f"edge_x{edge_processes}_p99_ms": multi.p99_ms,
        f"edge_x{edge_processes}_ratio": round(multi.rps / baseline.rps, 3) if baseline.rps else 0.0,
        f"edge_x{edge_processes}_errors": multi.errors,
        "edge_peak_mb": round(single_peak, 1),
        "edge_journal_rps": round(journaled.rps),
        "edge_journal_p99_ms": journaled.p99_ms,
        "edge_journal_errors": journaled.errors,
        "journal_cost_ratio": round(journaled.rps / single.rps, 3) if single.rps else 0.0,
        "edge_tenants_rps": round(with_tenants.rps),
        "edge_tenants_p99_ms": with_tenants.p99_ms,
        "edge_tenants_errors": with_tenants.errors,
        "tenants_cost_ratio": round(with_tenants.rps / single.rps, 3) if single.rps else 0.0,
    }


def _under_wrk(pid: int, url: str, duration_s: float) -> tuple[wrk.WrkResult, float]:
    """wrk against one server process: the result, and the server's CPU µs per request from /proc."""
    before = cpu.times(pid)
    result = wrk.run(url, SMS_BODY, CONNECTIONS, duration_s)
    after = cpu.times(pid)
    spent = after.own_s - before.own_s if before is not None and after is not None else 0.0
    return result, round(spent / max(1, result.requests) * 1e6, 1)


def _one_edge(
    env: dict[str, str], log: Path, duration_s: float, path: str, args: list[str]
) -> tuple[wrk.WrkResult, float, float]:
    """One edge process under wrk: its result, its peak memory and its CPU µs per request."""
    port = free_port()
    edge = processes.spawn(["ringback", "edge", "--port", str(port), *args], env, log)
    try:
        processes.wait_listening(edge, port)
        result, cpu_us = _under_wrk(edge.pid, f"http://127.0.0.1:{port}{path}", duration_s)
        return result, processes.peak_rss_mb(edge.pid), cpu_us
    finally:
        processes.stop(edge)


def _tenants_file(workdir: Path) -> Path:
    path = workdir / "bench-tenants.toml"
    entries = [
        (
            f'[[tenants]]\nid = "tenant-{i}"\nsecret = "{BENCH_SECRET if i == 0 else f"{BENCH_SECRET}-{i}"}"\napp_id '
            f'= "14000{i:05d}"\n'
        )
        for i in range(BENCH_TENANTS)
    ]
    path.write_text("allow_anonymous = false\n" + "".join(entries))
    return path
