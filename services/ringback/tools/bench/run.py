"""Runs every stage, prints the table, writes the JSON report and the chart, ends with one summary line."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time
import uuid
from pathlib import Path
from typing import Any

from ringback import __version__
from ringback.config import Settings
from ringback.runtime.broker import EmbeddedBroker
from ringback.runtime.lifecycle import tune_gc
from ringback.tools.bench import e2e_stage, edge_stage, worker_stages

RESULTS_DIR = "bench-results"
STAGES = ("edge", "normalizer", "sink", "e2e")


def profile(quick: bool) -> dict[str, float]:
    if quick:  # the smoke run in `make test`: seconds, not a measurement
        return {
            "edge_s": 1,
            "normalizer_messages": 2000,
            "sink_rows": 5000,
            "e2e_s": 3,
            "e2e_rate": 300,  # loadgen only (where wrk is missing)
            "e2e_connections": 4,
        }
    return {
        "edge_s": 10,
        "normalizer_messages": 30000,
        "sink_rows": 60000,
        "e2e_s": 60,
        "e2e_rate": 0,
        "e2e_connections": 64,
    }


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }


def stage_settings(bootstrap: str, data_dir: Path) -> Settings:
    """Topics and groups of its own for each stage, so no stage reads another's messages."""
    suffix = uuid.uuid4().hex[:6]
    return Settings(
        kafka_bootstrap=bootstrap,
        data_dir=str(data_dir),
        topic_raw=f"bench.raw.{suffix}",
        topic_normalized=f"bench.normalized.{suffix}",
        topic_dlq=f"bench.dlq.{suffix}",
        topic_ledger=f"bench.ledger.{suffix}",
        normalizer_group=f"bench-n-{suffix}",
        sink_group=f"bench-s-{suffix}",
        log_level="warning",
    )


def run(results_root: Path, quick: bool, stages: tuple[str, ...] = STAGES) -> dict[str, Any]:
    plan = profile(quick)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = results_root / f"work-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "version": __version__,
        "quick": quick,
        "stages": list(stages),
        "machine": machine(),
        "started": stamp,
    }
    if {"edge", "normalizer", "sink"} & set(stages):
        with EmbeddedBroker() as broker:
            if "edge" in stages:
                report["edge"] = edge_stage.run(workdir, broker.bootstrap, plan["edge_s"])
            tune_gc(Settings().gc_gen0_threshold)  # the worker stages run in this process: tuned as the roles are
            if "normalizer" in stages:
                report["normalizer"] = asyncio.run(
                    worker_stages.bench_normalizer(
                        stage_settings(broker.bootstrap, workdir / "normalizer"), int(plan["normalizer_messages"])
                    )
                )
            if "sink" in stages:
                report["sink"] = asyncio.run(
                    worker_stages.bench_sink(stage_settings(broker.bootstrap, workdir / "sink"), int(plan["sink_rows"]))
                )
    if "e2e" in stages:
        report["e2e"] = e2e_stage.run(
            workdir, plan["e2e_s"], plan["e2e_rate"], connections=int(plan["e2e_connections"])
        )
    return report


def _per_record(rate: float) -> float:
    """µs per record of a rate in records/s (wall time of the one process doing the work)."""
    return round(1e6 / rate, 1) if rate else 0.0


def summary_pairs(report: dict[str, Any]) -> list[tuple[str, object]]:
    """The summary line's keys and values, for the stages that ran (every stage: every key)."""
    pairs: list[tuple[str, object]] = []
    edge, normalizer, sink, e2e = (report.get(stage) for stage in STAGES)
    if edge is not None:
        pairs += [
            ("edge_ratio", edge.get("edge_ratio", 0)),
            ("edge_p99_ms", edge.get("edge_p99_ms", 0)),
            ("journal_cost_ratio", edge.get("journal_cost_ratio", 0)),
            ("tenants_cost_ratio", edge.get("tenants_cost_ratio", 0)),
        ]
    if normalizer is not None:
        pairs += [
            ("normalizer_eps", normalizer["normalizer_eps"]),
            ("normalizer_ratio", normalizer["normalizer_ratio"]),
        ]
    if sink is not None:
        pairs += [("sink_rps", sink["sink_rps"]), ("sink_ratio", sink["sink_ratio"])]
    if e2e is not None:
        pairs += [
            ("e2e_cps", e2e["e2e_cps"]),
            ("e2e_drained_cps", e2e.get("e2e_drained_cps", 0)),
            ("e2e_p99_s", e2e["queryable_p99_s"]),
            ("lost", e2e["lost"]),
        ]
    # Each stage's CPU (or time) per record beside its baseline's, then the pipeline's CPU per callback.
    if edge is not None:
        pairs += [
            ("edge_cpu_us_per_req", edge.get("edge_cpu_us_per_req", 0)),
            ("edge_baseline_cpu_us_per_req", edge.get("baseline_cpu_us_per_req", 0)),
        ]
    if normalizer is not None:
        pairs += [
            ("normalizer_us_per_msg", normalizer["breakdown"]["measured_us_per_msg"]),
            ("normalizer_baseline_us_per_msg", _per_record(normalizer["passthrough_msgs_per_s"])),
        ]
    if sink is not None:
        pairs += [
            ("sink_us_per_row", sink["breakdown"]["measured_us_per_row"]),
            ("sink_baseline_us_per_row", _per_record(sink["direct_insert_rps"])),
        ]
    if e2e is not None:
        pairs += [
            ("e2e_stored_cps", e2e.get("e2e_stored_cps", 0)),
            ("e2e_reply_p99_ms", e2e.get("reply_p99_ms", 0)),
            ("e2e_cpu_us", e2e.get("e2e_cpu_us", 0)),
            *((f"e2e_cpu_us_{role}", e2e.get(f"e2e_cpu_us_{role}", 0)) for role in E2E_CPU_ROLES),
            ("e2e_loadgen_cpu_us", e2e.get("loadgen_cpu_us_per_request", 0)),
            ("e2e_wrk", 1 if e2e.get("load_generator") == "wrk" else 0),
        ]
        if edge is not None:
            pairs.append(("e2e_cpu_per_bare_request", e2e_cpu_per_bare_request(report)))
    return pairs


def e2e_cpu_per_bare_request(report: dict[str, Any]) -> float:
    """The pipeline's CPU per stored callback in units of the bare aiohttp handler's CPU per request, both
    measured in this run: on a shared machine whose speed moves by a fifth between runs, this moves less
    than the µs do (0 when either is missing)."""
    bare = float((report.get("edge") or {}).get("baseline_cpu_us_per_req") or 0)
    pipeline = float((report.get("e2e") or {}).get("e2e_cpu_us") or 0)
    return round(pipeline / bare, 2) if bare and pipeline else 0.0


#: The roles whose CPU per callback the summary line carries (the report has the rest too).
E2E_CPU_ROLES = ("edge", "normalizer", "sink", "broker")


def summary_line(report: dict[str, Any]) -> str:
    return "bench: " + " ".join(f"{key}={value}" for key, value in summary_pairs(report))


BREAKDOWN_STEPS = {
    "normalizer": (
        "adapters_us_per_msg",
        "avro_encode_us_per_msg",
        "broker_client_and_loop_us_per_msg",
        "measured_us_per_msg",
    ),
    "sink": (
        "ledger_keys_us_per_row",
        "container_us_per_row",
        "clickhouse_insert_us_per_row",
        "fetch_loop_and_insert_waits_us_per_row",
        "measured_us_per_row",
    ),
}


def _breakdown_cell(stage: dict[str, Any]) -> str:
    parts = stage.get("breakdown") or {}
    kind = "normalizer" if "adapters_us_per_msg" in parts else "sink"
    steps = BREAKDOWN_STEPS[kind]
    return " / ".join(str(parts.get(name, "-")) for name in steps[:-1]) + f" of {parts.get(steps[-1], '-')}"


def _memory_cell(e2e: dict[str, Any]) -> str:
    """First → last sample of each role's RSS, and how much the last third's peak exceeds the middle
    third's: near 0 % means the role has levelled off (caches full, batches recycled)."""
    cells = []
    for role in ("edge", "normalizer", "sink"):
        samples = e2e.get(f"{role}_rss_mb_over_time") or []
        third = len(samples) // 3
        if third == 0:
            continue
        growth = max(samples[-third:]) / max(samples[third : 2 * third]) - 1
        cells.append(f"{role} {samples[0]:.0f}→{samples[-1]:.0f} ({growth:+.0%})")
    return ", ".join(cells) or "-"


def _edge_rows(edge: dict[str, Any]) -> list[tuple[str, ...]]:
    multi = next((k for k in edge if k.startswith("edge_x") and k.endswith("_rps")), None)
    return [
        (
            "edge req/s @64 conn",
            str(edge.get("edge_rps", "-")),
            str(edge.get("baseline_rps", "-")),
            str(edge.get("edge_ratio", "-")),
            (
                f"p50 {edge.get('edge_p50_ms', '-')} ms, p99 {edge.get('edge_p99_ms', '-')} ms (bare: p99 "
                f"{edge.get('baseline_p99_ms', '-')} ms)"
            ),
        ),
        (
            "  CPU per request, µs",
            str(edge.get("edge_cpu_us_per_req", "-")),
            str(edge.get("baseline_cpu_us_per_req", "-")),
            "-",
            f"from /proc (utime+stime) of the server process; wrk's own {edge.get('wrk_cpu_us_per_req', '-')} µs",
        ),
        (
            f"edge ×{multi[6:-4] if multi else '?'} processes req/s",
            str(edge.get(multi, "-")) if multi else "-",
            str(edge.get("baseline_rps", "-")),
            str(edge.get(multi.replace("_rps", "_ratio"), "-")) if multi else "-",
            "SO_REUSEPORT",
        ),
        (
            "  journal on req/s",
            str(edge.get("edge_journal_rps", "-")),
            str(edge.get("edge_rps", "-")),
            str(edge.get("journal_cost_ratio", "-")),
            (
                "every callback fsync'd before the reply (baseline: the edge above); p99 "
                f"{edge.get('edge_journal_p99_ms', '-')} ms"
            ),
        ),
        (
            "  tenants on req/s",
            str(edge.get("edge_tenants_rps", "-")),
            str(edge.get("edge_rps", "-")),
            str(edge.get("tenants_cost_ratio", "-")),
            (
                "tenant URL, secret checked per request, 100 tenants (baseline: the edge above); p99 "
                f"{edge.get('edge_tenants_p99_ms', '-')} ms"
            ),
        ),
    ]


def _normalizer_rows(normalizer: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (
            "normalizer msgs/s",
            str(normalizer["normalizer_msgs_per_s"]),
            str(normalizer["passthrough_msgs_per_s"]),
            str(normalizer["normalizer_ratio"]),
            f"{normalizer['normalizer_eps']} events/s (pass-through consumer→producer baseline)",
        ),
        (
            "  per message, µs",
            _breakdown_cell(normalizer),
            str(_per_record(normalizer["passthrough_msgs_per_s"])),
            "-",
            "adapters / Avro encode / broker client and loop",
        ),
    ]


def _sink_rows(sink: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (
            "sink rows/s",
            str(sink["sink_rps"]),
            str(sink["direct_insert_rps"]),
            str(sink["sink_ratio"]),
            "baseline: direct columnar insert",
        ),
        (
            "  per row, µs",
            _breakdown_cell(sink),
            str(_per_record(sink["direct_insert_rps"])),
            "-",
            "ledger keys / container / ClickHouse insert (own thread) / fetch and loop",
        ),
    ]


def _e2e_cpu_cell(e2e: dict[str, Any]) -> str:
    roles = " / ".join(str(e2e.get(f"e2e_cpu_us_{role}", "-")) for role in E2E_CPU_ROLES)
    return f"{roles} of {e2e.get('e2e_cpu_us', '-')}"


def _e2e_rows(e2e: dict[str, Any], report: dict[str, Any]) -> list[tuple[str, ...]]:
    recycled = {role: n for role, n in (e2e.get("processes_by_role") or {}).items() if n > 1}
    return [
        (
            "end to end callbacks/s",
            str(e2e["e2e_cps"]),
            "-",
            "-",
            (
                f"{e2e.get('load_generator', 'loadgen')}, accepted for {e2e['duration_s']} s; all stored "
                f"{e2e.get('drained_s', '-')} s after the start: {e2e.get('e2e_stored_cps', '-')}/s stored"
            ),
        ),
        (
            "  CPU per callback, µs",
            _e2e_cpu_cell(e2e),
            str((report.get("edge") or {}).get("baseline_cpu_us_per_req", "-")),
            str(e2e_cpu_per_bare_request(report) or "-"),
            (
                "baseline: the bare handler's CPU per request (edge stage), ratio: how many of it a callback costs; "
                f"edge / normalizer / sink / broker of all (with supervisor {e2e.get('e2e_cpu_us_supervisor', '-')}, "
                f"ended unsampled {e2e.get('e2e_cpu_us_ended_unsampled', '-')})"
                f"; /proc, per stored callback; load generator {e2e.get('loadgen_cpu_us_per_request', '-')} µs/req"
                + (f"; recycled: {recycled}" if recycled else "")
            ),
        ),
        (
            "  reply → queryable",
            f"p50 {e2e['queryable_p50_s']} s, p99 {e2e['queryable_p99_s']} s",
            "-",
            "-",
            f"reply p99 {e2e['reply_p99_ms']} ms; lost {e2e['lost']}",
        ),
        (
            "peak memory MB",
            (
                f"edge {e2e.get('edge_peak_mb')}, normalizer {e2e.get('normalizer_peak_mb')}, sink "
                f"{e2e.get('sink_peak_mb')}"
            ),
            "-",
            "-",
            "VmHWM under end-to-end load",
        ),
        (
            "  RSS MB over the load",
            _memory_cell(e2e),
            "-",
            "-",
            "first→last sample (last third's peak vs the middle third's)",
        ),
    ]


def table(report: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = [("stage", "ringback", "baseline", "ratio", "notes")]
    for stage, stage_rows in (("edge", _edge_rows), ("normalizer", _normalizer_rows), ("sink", _sink_rows)):
        if stage in report and "skipped" not in report[stage]:
            rows += stage_rows(report[stage])
        elif stage in report:
            rows.append((f"{stage}", "-", "-", "-", str(report[stage]["skipped"])))
    if "e2e" in report:
        rows += _e2e_rows(report["e2e"], report)
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)


def chart(report: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if not all(stage in report for stage in STAGES):
        return False
    edge, normalizer, sink = report["edge"], report["normalizer"], report["sink"]
    stages = ["edge req/s", "normalizer msgs/s", "sink rows/s"]
    ours = [edge.get("edge_rps", 0), normalizer["normalizer_msgs_per_s"], sink["sink_rps"]]
    base = [edge.get("baseline_rps", 0), normalizer["passthrough_msgs_per_s"], sink["direct_insert_rps"]]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for axis, name, mine, theirs in zip(axes, stages, ours, base, strict=True):
        axis.bar(["ringback", "baseline"], [mine, theirs], color=["#2b6cb0", "#a0aec0"])
        axis.set_title(f"{name}\nratio {mine / theirs:.2f}" if theirs else name, fontsize=10)
        axis.ticklabel_format(axis="y", style="plain")
    e2e = report["e2e"]
    fig.suptitle(
        f"ringback bench — e2e {e2e['e2e_cps']} callbacks/s accepted, {e2e.get('e2e_drained_cps', '-')}/s stored, "
        f"queryable p99 {e2e['queryable_p99_s']} s, lost {e2e['lost']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(quick: bool = False, results_root: str = RESULTS_DIR, stages: tuple[str, ...] = STAGES) -> int:
    root = Path(results_root)
    report = run(root, quick, stages)
    stamp = report["started"]
    json_path = root / f"bench-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    png_path = root / f"bench-{stamp}.png"
    drew = chart(report, png_path)
    print(table(report))
    no_chart = "  (chart: needs every stage and matplotlib)"
    print(f"report: {json_path}" + (f"  chart: {png_path}" if drew else no_chart))
    print(summary_line(report), flush=True)
    return 0 if report.get("e2e", {}).get("lost", 0) == 0 else 1
