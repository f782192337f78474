"""The `ringback` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ringback import __version__, config, logs
from ringback.config import ConfigError, Settings

NON_SETTING_ARGS = {
    "command", "query", "output_format", "hours", "url", "duration", "requests", "rate", "connections",
    "resend_share", "malformed_share", "mix", "seed", "tenant_ids", "tenant_secrets", "apps", "as_json", "quick", "results", "max_journal_age_s", "edge_url", "normalizer_url", "sink_url",
}
DESCRIPTION = "ringback: ingest telecom vendor callbacks into one clean, billable event stream."
#: `ringback sql -` reads the query from standard input.
STDIN_QUERY = "-"
#: Everything ringback creates (data directory, store, spool, run files, reports) is its owner's alone;
#: children of `ringback run` inherit it.
PRIVATE_UMASK = 0o077


def _run(settings: Settings) -> int:
    from ringback.runtime.lifecycle import run_async
    from ringback.supervisor import run_all

    return run_async(lambda: run_all(settings))


def _edge(settings: Settings) -> int:
    from ringback.edge.server import serve
    from ringback.runtime.lifecycle import run_async

    return run_async(lambda: serve(settings))


def _normalizer(settings: Settings) -> int:
    from ringback.normalizer.service import serve
    from ringback.runtime.lifecycle import run_async

    return run_async(lambda: serve(settings))


def _sink(settings: Settings) -> int:
    from ringback.runtime.lifecycle import run_async
    from ringback.sink.service import serve

    return run_async(lambda: serve(settings))


def _broker(settings: Settings) -> int:
    import signal
    import threading

    from ringback.runtime.broker import EmbeddedBroker

    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    with EmbeddedBroker(port=settings.kafka_port) as broker:
        print(f"broker listening on {broker.bootstrap} (Ctrl-C stops it)", flush=True)
        stopped.wait()
    return 0


ROLE_COMMANDS: dict[str, tuple[Callable[[Settings], int], str]] = {
    "run": (_run, "Run the whole pipeline: embedded broker (unless --kafka-bootstrap), edge, normalizer, sink."),
    "edge": (_edge, "Run the HTTP edge against an existing Kafka."),
    "normalizer": (_normalizer, "Run a normalizer worker against an existing Kafka."),
    "sink": (_sink, "Run a sink worker against an existing Kafka and ClickHouse."),
    "broker": (_broker, "Run only the embedded Kafka-protocol broker (for development)."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ringback", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"ringback {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in ROLE_COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        config.add_flags(sub)
    sql = commands.add_parser(
        "sql", help="Run a read-only SQL query (FORMAT clauses pass through).",
        description="Run one read-only SQL query against the embedded store (even while `ringback run` runs) or a ClickHouse server. "
        "Allowed: SELECT (WITH, UNION), SHOW, DESCRIBE, EXISTS, EXPLAIN of a SELECT, with an optional FORMAT. Refused: writes, DDL, "
        "SET/SETTINGS, KILL, SYSTEM, USE, INTO OUTFILE, and table functions or functions that reach files, other hosts or programs. "
        "Each query is bounded by --query-timeout-s, --query-max-memory-bytes, --query-max-result-rows/-bytes and --query-max-threads.",
    )
    sql.add_argument("query", help=f'e.g. "SELECT count() FROM ringback.events" or "... FORMAT JSONEachRow"; "{STDIN_QUERY}" reads the query from standard input')
    sql.add_argument("--format", dest="output_format", default=None, help="Output format when the query has no FORMAT clause (default: PrettyCompact on a terminal, TabSeparated otherwise).")
    config.add_flags(sql)
    reconcile = commands.add_parser("reconcile", help="Print the ledger per route and hour and flag any gap (exit 1 on a gap in a closed hour).")
    reconcile.add_argument("--hours", type=int, default=24, help="How many hours back to look (default 24).")
    reconcile.add_argument("--json", dest="as_json", action="store_true", help="Print the lines as a JSON array.")
    config.add_flags(reconcile)
    load = commands.add_parser("loadgen", help="Simulate the vendors: realistic traffic on every route against an edge URL.")
    load.add_argument("--url", default=None, help="Edge base URL (default: the running `ringback run` of --data-dir, else http://127.0.0.1:8080).")
    load.add_argument("--duration", type=float, default=10.0, help="Seconds to send for (ignored with --requests).")
    load.add_argument("--requests", type=int, default=0, help="Send exactly this many requests.")
    load.add_argument("--rate", type=float, default=0.0, help="Requests per second (0 = as fast as the connections allow).")
    load.add_argument("--connections", type=int, default=32, help="Concurrent connections.")
    load.add_argument("--resend-share", type=float, default=0.05, help="Share of requests that resend an earlier body.")
    load.add_argument("--malformed-share", type=float, default=0.01, help="Share of requests with a truncated body.")
    load.add_argument("--mix", default=None, help="route=weight,... (default: the realistic mix, SMS receipts first; see `ringback.loadgen.DEFAULT_MIX`)")
    load.add_argument("--seed", type=int, default=7, help="Seed of the traffic generator.")
    load.add_argument("--tenant", dest="tenant_ids", action="append", default=[], metavar="ID",
                      help="Send as this tenant, to /t/ID/SECRET/callbacks/...; repeat (each with its --secret) for several. "
                      "Default: every tenant of --tenants-file that has a plain secret, else the tenant-less routes.")
    load.add_argument("--secret", dest="tenant_secrets", action="append", default=[], metavar="SECRET", help="The secret of the --tenant at the same position.")
    load.add_argument("--apps", type=int, default=None, help="Customer applications sharing the traffic, spread over the tenants (default 5).")
    load.add_argument("--json", dest="as_json", action="store_true", help="Print the summary as JSON.")
    config.add_flags(load)
    bench = commands.add_parser("bench", help="Measure every stage against its baseline (what `make bench` runs).")
    bench.add_argument("--quick", action="store_true", help="A few seconds per stage: a smoke run, not a measurement.")
    bench.add_argument("--results", default="bench-results", help="Folder for the JSON report and the chart.")
    status = commands.add_parser("status", help="The whole pipeline at a glance: each role ready or why not, lag, journal, dead letters (exit 1 when something is wrong).",
                                 description="Ask every role for its readiness and metrics (a role that does not answer within 2 s is shown as down); exit 1 when anything is wrong.")
    status.add_argument("--json", dest="as_json", action="store_true", help="Print the status as JSON.")
    status.add_argument("--max-journal-age-s", type=float, default=60.0, help="A callback not stored after this many seconds is a problem (default 60).")
    for role in ("edge", "normalizer", "sink"):
        status.add_argument(f"--{role}", dest=f"{role}_url", default=None, help=f"Base URL of a {role} (its /readyz and /metrics); default: the one `ringback run` started for --data-dir.")
    config.add_flags(status)
    soak = commands.add_parser("soak", help="`ringback run` under steady load for a long time, every process's memory sampled (what `make soak` runs).",
                               description="Run the whole pipeline under steady vendor traffic, sample every process's memory, and report whether it levels off and whether anything was lost.")
    soak.add_argument("--duration", type=float, default=3600.0, help="Seconds of load (default 3600).")
    soak.add_argument("--rate", type=float, default=300.0, help="Callbacks per second (default 300).")
    soak.add_argument("--warmup", type=float, default=600.0, help="Seconds counted as warm-up (default 600).")
    soak.add_argument("--results", default="bench-results/soak", help="Folder for the report, the samples and the chart.")
    show = commands.add_parser("config", help="Print the effective configuration and where each setting can be set.")
    config.add_flags(show)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)
    args = build_parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if k not in NON_SETTING_ARGS}
    if args.command == "run" and flags.get("log_format") is None and config.env_name("log_format") not in os.environ:
        flags["log_format"] = "console"  # a person is watching `ringback run`
    try:
        settings = config.load(flags)
    except ConfigError as exc:
        print(f"ringback: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level, role=args.command)

    if args.command == "sql":
        return _sql(settings, sys.stdin.read() if args.query == STDIN_QUERY else args.query, args.output_format)
    if args.command == "config":
        return _show_config(settings)
    if args.command == "status":
        return _status(settings, args)
    if args.command == "reconcile":
        return _reconcile(settings, args.hours, args.as_json)
    if args.command == "bench":
        from ringback.bench.run import main as bench_main

        return bench_main(quick=args.quick, results_root=args.results)
    if args.command == "soak":
        from ringback.bench import soak

        report = soak.run(Path(args.results), args.duration, args.rate, args.warmup)
        print(soak.render(report))
        return 0 if report["lost"] == 0 and report["failed"] == 0 else 1
    if args.command == "loadgen":
        return _loadgen(settings, args)
    handler, _ = ROLE_COMMANDS[args.command]
    try:
        return handler(settings)
    except KeyboardInterrupt:
        return 0


def _sql(settings: Settings, query: str, output_format: str | None) -> int:
    from ringback.sql import PIPE_FORMAT, TERMINAL_FORMAT, QueryError, run_sql

    default_format = output_format or (TERMINAL_FORMAT if sys.stdout.isatty() else PIPE_FORMAT)
    try:
        result = run_sql(settings, query, default_format)
    except QueryError as exc:
        print(f"ringback sql: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(result)
    sys.stdout.flush()
    return 0


def _reconcile(settings: Settings, hours: int, as_json: bool) -> int:
    import orjson

    from ringback.reconcile import as_json as lines_as_json
    from ringback.reconcile import has_closed_gap, ledger_lines, render
    from ringback.sql import QueryError

    try:
        lines = ledger_lines(settings, hours)
    except QueryError as exc:
        print(f"ringback reconcile: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(orjson.dumps(lines_as_json(lines)).decode())
    else:
        print(render(lines) if lines else f"no ledger entries in the last {hours} hours")
    return 1 if has_closed_gap(lines) else 0


def _loadgen(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    import orjson

    from ringback import loadgen
    from ringback.runtime import runfiles

    running = runfiles.read_live(settings.run_dir, "edge")
    url = args.url or (running["url"] if running else "http://127.0.0.1:8080")
    try:
        mix = loadgen.parse_mix(args.mix) if args.mix else dict(loadgen.DEFAULT_MIX)
    except ValueError as exc:
        print(f"ringback loadgen: {exc}", file=sys.stderr)
        return 2
    try:
        tenants, skipped = loadgen.tenants_for(args.tenant_ids, args.tenant_secrets, settings.tenants_file)
    except ValueError as exc:
        print(f"ringback loadgen: {exc}", file=sys.stderr)
        return 2
    if skipped:
        print(f"ringback loadgen: no plain secret for tenants {', '.join(skipped)}: not sending as them", file=sys.stderr)
    plan = loadgen.LoadPlan(
        url=url.rstrip("/"), requests=args.requests, duration_s=args.duration, rate=args.rate, connections=args.connections,
        resend_share=args.resend_share, malformed_share=args.malformed_share, mix=mix, seed=args.seed, tenants=tenants, apps=args.apps or loadgen.DEFAULT_APPS,
    )
    summary = asyncio.run(loadgen.run(plan, show_progress=sys.stderr.isatty() and not args.as_json))
    print(orjson.dumps(summary.as_dict()).decode() if args.as_json else summary.render())
    return 0 if summary.accepted else 1


def _status(settings: Settings, args: argparse.Namespace) -> int:
    import orjson

    from ringback import status

    given = {role: getattr(args, f"{role}_url") for role in status.ROLES}
    found = status.collect(settings, given, args.max_journal_age_s)
    print(orjson.dumps(status.as_json(found)).decode() if args.as_json else status.render(found))
    return 0 if found.ok else 1


def _show_config(settings: Settings) -> int:
    for flag, env, _default, _help in config.describe():
        name = flag[2:].replace("-", "_")
        print(f"{name:24} = {getattr(settings, name)!s:40}  ({flag}, {env})")
    return 0
