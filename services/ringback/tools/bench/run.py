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


def profile(quick: bool) -> dict[str, float]:
    if quick:  # the smoke run in `make test`: seconds, not a measurement
        return {"edge_s": 1, "normalizer_messages": 2000, "sink_rows": 5000, "e2e_s": 3, "e2e_rate": 300}
    return {"edge_s": 10, "normalizer_messages": 30000, "sink_rows": 60000, "e2e_s": 60, "e2e_rate": 0}


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


def run(results_root: Path, quick: bool) -> dict[str, Any]:
    plan = profile(quick)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = results_root / f"work-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"version": __version__, "quick": quick, "machine": machine(), "started": stamp}
    with EmbeddedBroker() as broker:
        report["edge"] = edge_stage.run(workdir, broker.bootstrap, plan["edge_s"])
        tune_gc(Settings().gc_gen0_threshold)  # the worker stages run in this process: tuned as the roles are
        report["normalizer"] = asyncio.run(
            worker_stages.bench_normalizer(
                stage_settings(broker.bootstrap, workdir / "normalizer"), int(plan["normalizer_messages"])
            )
        )
        report["sink"] = asyncio.run(
            worker_stages.bench_sink(stage_settings(broker.bootstrap, workdir / "sink"), int(plan["sink_rows"]))
        )
    report["e2e"] = e2e_stage.run(workdir, plan["e2e_s"], plan["e2e_rate"])
    return report


def summary_line(report: dict[str, Any]) -> str:
    edge, normalizer, sink, e2e = report["edge"], report["normalizer"], report["sink"], report["e2e"]
    return (
        f"bench: edge_ratio={edge.get('edge_ratio', 0)} edge_p99_ms={edge.get('edge_p99_ms', 0)} "
        f"journal_cost_ratio={edge.get('journal_cost_ratio', 0)} "
        f"tenants_cost_ratio={edge.get('tenants_cost_ratio', 0)} "
        f"normalizer_eps={normalizer['normalizer_eps']} normalizer_ratio={normalizer['normalizer_ratio']} "
        f"sink_rps={sink['sink_rps']} sink_ratio={sink['sink_ratio']} e2e_cps={e2e['e2e_cps']} "
        f"e2e_drained_cps={e2e.get('e2e_drained_cps', 0)} "
        f"e2e_p99_s={e2e['queryable_p99_s']} lost={e2e['lost']}"
    )


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


def table(report: dict[str, Any]) -> str:
    edge, normalizer, sink, e2e = report["edge"], report["normalizer"], report["sink"], report["e2e"]
    multi = next((k for k in edge if k.startswith("edge_x") and k.endswith("_rps")), None)
    rows = [
        ("stage", "ringback", "baseline", "ratio", "notes"),
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
        (
            "normalizer msgs/s",
            str(normalizer["normalizer_msgs_per_s"]),
            str(normalizer["passthrough_msgs_per_s"]),
            str(normalizer["normalizer_ratio"]),
            f"{normalizer['normalizer_eps']} events/s (pass-through consumer→producer baseline)",
        ),
        ("  per message, µs", _breakdown_cell(normalizer), "-", "-", "adapters / Avro encode / broker client and loop"),
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
            "-",
            "-",
            "ledger keys / container / ClickHouse insert (own thread) / fetch and loop",
        ),
        (
            "end to end callbacks/s",
            str(e2e["e2e_cps"]),
            "-",
            "-",
            (
                f"accepted for {e2e['duration_s']} s; all stored {e2e.get('drained_s', '-')} s after the start: "
                f"{e2e.get('e2e_drained_cps', '-')}/s kept up with"
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
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)


def chart(report: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
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


def main(quick: bool = False, results_root: str = RESULTS_DIR) -> int:
    root = Path(results_root)
    report = run(root, quick)
    stamp = report["started"]
    json_path = root / f"bench-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    png_path = root / f"bench-{stamp}.png"
    drew = chart(report, png_path)
    print(table(report))
    print(f"report: {json_path}" + (f"  chart: {png_path}" if drew else "  (chart: matplotlib not installed)"))
    print(summary_line(report), flush=True)
    return 0 if report["e2e"]["lost"] == 0 else 1
