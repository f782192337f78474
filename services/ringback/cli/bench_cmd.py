"""`ringback bench`, `ringback soak` and `ringback bench-queries`: the measurements."""

from __future__ import annotations

import argparse
from pathlib import Path

from ringback.cli.common import MAX_COUNT, MAX_HOURS, MAX_SECONDS, Command, SubParsers, number, whole_number
from ringback.config import Settings


def add_bench(commands: SubParsers) -> None:
    bench = commands.add_parser("bench", help="Measure every stage against its baseline (what `make bench` runs).")
    bench.add_argument("--quick", action="store_true", help="A few seconds per stage: a smoke run, not a measurement.")
    bench.add_argument("--results", default="bench-results", help="Folder for the JSON report and the chart.")
    bench.add_argument(
        "--stage",
        action="append",
        choices=BENCH_STAGES,
        help=(
            "Run only this stage (repeatable; default: all). `--stage e2e`: `ringback run` under wrk for 60 s "
            "(3 with --quick), the pipeline's CPU per callback by role; the summary line then carries that "
            "stage's keys only."
        ),
    )


#: The stages of `ringback bench`, in the order they run (ringback.tools.bench.run.STAGES).
BENCH_STAGES = ("edge", "normalizer", "sink", "e2e")


def handle_bench(args: argparse.Namespace, _settings: Settings) -> int:
    from ringback.tools.bench.run import main as bench_main

    stages = tuple(stage for stage in BENCH_STAGES if stage in (args.stage or BENCH_STAGES))
    return bench_main(quick=args.quick, results_root=args.results, stages=stages)


def add_soak(commands: SubParsers) -> None:
    soak = commands.add_parser(
        "soak",
        help=(
            "`ringback run` under steady load for a long time, every process's memory sampled (what `make soak` runs)."
        ),
        description=(
            "Run the whole pipeline under steady vendor traffic, sample every process's memory, and report whether it "
            "levels off and whether anything was lost."
        ),
    )
    soak.add_argument("--duration", type=number(0, MAX_SECONDS), default=3600.0, help="Seconds of load (default 3600).")
    soak.add_argument("--rate", type=number(0, MAX_COUNT), default=300.0, help="Callbacks per second (default 300).")
    soak.add_argument(
        "--warmup", type=number(0, MAX_SECONDS), default=600.0, help="Seconds counted as warm-up (default 600)."
    )
    soak.add_argument(
        "--results", default="bench-results/soak", help="Folder for the report, the samples and the chart."
    )


def handle_soak(args: argparse.Namespace, _settings: Settings) -> int:
    from ringback.tools.bench import soak

    report = soak.run(Path(args.results), args.duration, args.rate, args.warmup)
    print(soak.render(report))
    return 0 if report["lost"] == 0 and report["failed"] == 0 else 1


def add_bench_queries(commands: SubParsers) -> None:
    bq = commands.add_parser(
        "bench-queries",
        help="The analyst cookbook's queries on a large generated store, timed (what `make bench-queries` runs).",
        description=(
            "Generate events in a fresh embedded store (resent copies included) and time the cookbook's queries."
        ),
    )
    bq.add_argument(
        "--rows", type=whole_number(1, MAX_COUNT), default=100_000_000, help="Events to generate (default 100 million)."
    )
    bq.add_argument(
        "--days", type=whole_number(1, MAX_HOURS // 24), default=10, help="Days they spread over (default 10)."
    )
    bq.add_argument("--results", default="bench-results/queries", help="Folder for the store and the report.")


def handle_bench_queries(args: argparse.Namespace, _settings: Settings) -> int:
    from ringback.tools.bench import queries

    print(queries.render(queries.run(Path(args.results), args.rows, args.days)))
    return 0


BENCH = Command("bench", add_bench, handle_bench)
SOAK = Command("soak", add_soak, handle_soak)
BENCH_QUERIES = Command("bench-queries", add_bench_queries, handle_bench_queries)
COMMANDS = (BENCH, SOAK, BENCH_QUERIES)
