"""Edge throughput and latency at 64 connections: the real edge (publishing to the real broker, one
and several processes on one port) against a bare aiohttp handler that gives the same reply."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from ringback.bench import processes, wrk
from ringback.config import Settings
from ringback.runtime import kafka
from ringback.runtime.ports import free_port

CONNECTIONS = 64
SMS_BODY = orjson.dumps([{"user_receive_time": "2026-11-21 08:00:00", "nationcode": "86", "mobile": "13800138000", "report_status": "SUCCESS", "errmsg": "DELIVRD", "description": "ok", "sid": "bench-edge"}])
ROUTE = "/callbacks/tencent/sms-status"


def run(workdir: Path, bootstrap: str, duration_s: float, edge_processes: int = 2) -> dict[str, Any]:
    if not wrk.available():
        return {"skipped": "wrk not installed (make bench installs it)"}
    settings = Settings(kafka_bootstrap=bootstrap, data_dir=str(workdir / "edge"))
    asyncio.run(kafka.ensure_topics(settings))
    log = workdir / "edge.log"
    env = {**settings.as_env(), "RINGBACK_LOG_LEVEL": "warning"}

    base_port = free_port()
    bare = processes.spawn(["ringback.bench.bare_server", str(base_port)], env, log)
    try:
        processes.wait_listening(bare, base_port)
        baseline = wrk.run(f"http://127.0.0.1:{base_port}{ROUTE}", SMS_BODY, CONNECTIONS, duration_s)
    finally:
        processes.stop(bare)

    one_port = free_port()
    edge = processes.spawn(["ringback", "edge", "--port", str(one_port)], env, log)
    try:
        processes.wait_listening(edge, one_port)
        single = wrk.run(f"http://127.0.0.1:{one_port}{ROUTE}", SMS_BODY, CONNECTIONS, duration_s)
        single_peak = processes.peak_rss_mb(edge.pid)
    finally:
        processes.stop(edge)

    many_port = free_port()
    edges = [processes.spawn(["ringback", "edge", "--port", str(many_port), "--reuse-port", "true"], env, log) for _ in range(edge_processes)]
    try:
        for process in edges:
            processes.wait_listening(process, many_port)
        multi = wrk.run(f"http://127.0.0.1:{many_port}{ROUTE}", SMS_BODY, CONNECTIONS, duration_s, threads=2)
    finally:
        for process in edges:
            processes.stop(process)

    return {
        "connections": CONNECTIONS,
        "baseline_rps": round(baseline.rps), "baseline_p50_ms": baseline.p50_ms, "baseline_p99_ms": baseline.p99_ms, "baseline_errors": baseline.errors,
        "edge_rps": round(single.rps), "edge_p50_ms": single.p50_ms, "edge_p99_ms": single.p99_ms,
        "edge_ratio": round(single.rps / baseline.rps, 3) if baseline.rps else 0.0,
        "edge_errors": single.errors,
        f"edge_x{edge_processes}_rps": round(multi.rps), f"edge_x{edge_processes}_p99_ms": multi.p99_ms,
        f"edge_x{edge_processes}_ratio": round(multi.rps / baseline.rps, 3) if baseline.rps else 0.0,
        f"edge_x{edge_processes}_errors": multi.errors,
        "edge_peak_mb": round(single_peak, 1),
    }
