"""The `ringback` command line."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ringback import __version__, audit, config, logs
from ringback.config import ConfigError, Settings

if TYPE_CHECKING:
    from ringback.consumer import Delivered, Start

NON_SETTING_ARGS = {
    "command",
    "query",
    "output_format",
    "output_settings",
    "output_timezone",
    "hours",
    "url",
    "duration",
    "requests",
    "rate",
    "connections",
    "resend_share",
    "malformed_share",
    "mix",
    "seed",
    "tenant_ids",
    "tenant_secrets",
    "apps",
    "as_json",
    "quick",
    "results",
    "max_journal_age_s",
    "edge_url",
    "normalizer_url",
    "sink_url",
    "start",
    "types",
    "tenants",
    "max_events",
    "follow",
    "from_raw",
    "reasons",
    "routes",
    "ingest_ids",
    "since",
    "until",
    "dry_run",
}
DESCRIPTION = "ringback: ingest telecom vendor callbacks into one clean, billable event stream."
#: `ringback sql -` reads the query from standard input.
STDIN_QUERY = "-"
#: `ringback tail --tenant -`: the events of the tenant-less routes.
NO_TENANT = "-"
#: `ringback tail --from -15m`: how long ago, in seconds per unit.
AGO = re.compile(r"-(\d+(?:\.\d+)?)([smhd])")
SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
TAIL_STARTS = ("beginning", "end")
#: Options that take a time, which may be a time ago (-15m).
TIME_OPTIONS = ("--from", "--since", "--until")
#: Exit status of a command given an argument it cannot use (argparse's own).
USAGE_ERROR = 2
#: The times a command line may name: Kafka's timestamps start at the Unix epoch, the store's
#: DateTime64 ends with 2299.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2299, 12, 31, 23, 59, 59, tzinfo=UTC)
#: Upper bounds of the numeric options: far beyond any use, well inside what the code can represent.
MAX_HOURS = 100 * 366 * 24
MAX_COUNT = 10**12
MAX_SECONDS = 100 * 366 * 86400.0
MAX_CONNECTIONS = 10_000
#: Everything ringback creates (data directory, store, spool, run files, reports) is its owner's alone;
#: children of `ringback run` inherit it.
PRIVATE_UMASK = 0o077


def _analysts_file_valid(settings: Settings) -> bool:
    """The analysts file checked before anything starts: a bad one is a configuration error."""
    from ringback.sink.analysts import AnalystsError, load

    if not settings.analysts_file:
        return True
    try:
        load(Path(settings.analysts_file))
    except AnalystsError as exc:
        print(f"ringback: configuration error: analysts file: {exc}", file=sys.stderr)
        return False
    return True


def _run(settings: Settings) -> int:
    from ringback.runtime.lifecycle import run_async
    from ringback.supervisor import run_all

    if not _analysts_file_valid(settings):
        return 2
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

    if not _analysts_file_valid(settings):
        return 2
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


#: In a command's usage line, where the configuration flags go (listed in full under their own heading).
CONFIGURATION_USAGE = "[configuration flags, below]"
CONFIG_FILE_DEST = "config_file"
SETTING_NAMES = frozenset(f.name for f in dataclasses.fields(Settings))


def _is_configuration(action: argparse.Action) -> bool:
    return action.dest == CONFIG_FILE_DEST or action.dest in SETTING_NAMES


class OwnOptionsFirst(argparse.HelpFormatter):
    """A command's help shows what is its own first: the usage line names its own options and
    arguments, then stands in one placeholder for the ~60 configuration flags every command shares,
    which follow, in full, after the command's own options."""

    def _format_usage(self, usage: str | None, actions: Any, groups: Any, prefix: str | None) -> str:
        own = [action for action in actions if not _is_configuration(action)]
        text = super()._format_usage(usage, own, groups, prefix)
        if usage is not None or len(own) == len(actions):
            return text
        lines = text.rstrip().split("\n")
        if len(lines[-1]) + 1 + len(CONFIGURATION_USAGE) <= self._width:
            lines[-1] += f" {CONFIGURATION_USAGE}"
        else:
            lines.append(" " * len(f"usage: {self._prog} ") + CONFIGURATION_USAGE)
        return "\n".join(lines) + "\n\n"


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``, else a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def number(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number from ``low`` to ``high``, else a one-line usage error."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:  # NaN fails both
            raise argparse.ArgumentTypeError(f"{text} is not between {low:g} and {high:g}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ringback", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"ringback {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in ROLE_COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        config.add_flags(sub)
    sql = commands.add_parser(
        "sql",
        help="Run a read-only SQL query (FORMAT clauses pass through).",
        description=(
            "Run one read-only SQL query against the embedded store (even while `ringback run` runs) or a "
            "ClickHouse server. Allowed: SELECT (WITH, UNION, EXCEPT, INTERSECT), SHOW, DESCRIBE, EXISTS, EXPLAIN of a "
            "SELECT, with an optional FORMAT and SETTINGS of output settings only. Refused: writes, DDL, SET and any "
            "other setting, KILL, SYSTEM, USE, INTO OUTFILE, the system tables that show other queries, errors or "
            "paths, and table functions or functions that reach files, other hosts or programs. Each query is "
            "bounded by --query-timeout-s, --query-max-memory-bytes, --query-max-result-rows/-bytes and "
            "--query-max-threads."
        ),
    )
    sql.add_argument(
        "query",
        help=(
            f'e.g. "SELECT count() FROM ringback.events" or "... FORMAT JSONEachRow"; "{STDIN_QUERY}" reads the query '
            "from standard input"
        ),
    )
    sql.add_argument(
        "--format",
        dest="output_format",
        default=None,
        help=(
            "Output format when the query has no FORMAT clause (default: PrettyCompact on a terminal, TabSeparated "
            "otherwise)."
        ),
    )
    sql.add_argument(
        "--setting",
        dest="output_settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=(
            "An output setting for this query (repeat it), like a SETTINGS clause: "
            "output_format_json_quote_decimals=1 prints money as JSON strings; see the README's Analyst queries."
        ),
    )
    sql.add_argument(
        "--timezone",
        dest="output_timezone",
        default=None,
        metavar="ZONE",
        help=(
            "Time zone the query's times are shown and computed in (session_timezone), e.g. Asia/Shanghai; "
            "default: UTC. Columns that name their zone keep it."
        ),
    )
    config.add_flags(sql)
    reconcile = commands.add_parser(
        "reconcile", help="Print the ledger per route and hour and flag any gap (exit 1 on a gap in a closed hour)."
    )
    reconcile.add_argument(
        "--hours", type=whole_number(1, MAX_HOURS), default=24, help="How many hours back to look (default 24)."
    )
    reconcile.add_argument("--json", dest="as_json", action="store_true", help="Print the lines as a JSON array.")
    reconcile.add_argument(
        "--settled",
        action="store_true",
        help="The traffic stopped and the pipeline drained: judge the current hour too (not 'in flight').",
    )
    config.add_flags(reconcile)
    audit.add_parser(commands, config.add_flags)
    tail = commands.add_parser(
        "tail",
        help="Print the normalized events, decoded: what comes next, or from a time; --json for scripts.",
        description=(
            "Decode the normalized topic and print its events, one per line, as they are published (from the end by "
            "default). Every copy is shown: resends and replays share an event_id. Reads the broker of the running "
            "`ringback run` of --data-dir, or --kafka-bootstrap; commits nothing."
        ),
    )
    tail.add_argument(
        "--json",
        dest="as_json",
        action="store_true",
        help="One JSON object per event: every field, money as exact decimal text, times ISO 8601 UTC.",
    )
    tail.add_argument(
        "--from",
        dest="start",
        default="end",
        metavar="TIME",
        help=(
            "end (default: what comes next), beginning, a UTC time (2026-11-27T10:00Z; or with an offset, +08:00) "
            "or a time ago (-90s, -15m, -1h, -2d); by when each event was published."
        ),
    )
    tail.add_argument(
        "--type",
        dest="types",
        action="append",
        default=[],
        metavar="TYPE",
        help="Only these event types (repeat it, or separate with commas; call.* is every call.… type).",
    )
    tail.add_argument(
        "--tenant",
        dest="tenants",
        action="append",
        default=[],
        metavar="TENANT",
        help=f'Only these tenants (repeat it, or separate with commas; "{NO_TENANT}" is the tenant-less routes).',
    )
    tail.add_argument(
        "--max",
        dest="max_events",
        type=whole_number(0, MAX_COUNT),
        default=0,
        metavar="N",
        help="Stop after N events (default: no bound).",
    )
    tail.add_argument(
        "--no-follow",
        dest="follow",
        action="store_false",
        help="Stop at the end of the topic instead of waiting for more.",
    )
    config.add_flags(tail)
    replay = commands.add_parser(
        "replay",
        help=(
            "Send dead letters (or the raw topic's requests of a time range) through the current adapters again; "
            "idempotent."
        ),
        description=(
            "Publish the chosen requests to the raw topic again, as the edge published them, for the current "
            "adapters to normalize: the same reports get the same event ids (a replay never counts twice), a "
            "request that fails again replaces its dead letter, and the ledger counts them as replays. Dead letters "
            "by default (read from ringback.dead_letters); --raw for every request the raw topic still holds in "
            "--since .. --until. Uses the broker of the running `ringback run` of --data-dir, or --kafka-bootstrap."
        ),
    )
    replay.add_argument(
        "--raw",
        dest="from_raw",
        action="store_true",
        help="Replay the raw topic's requests received in --since .. --until instead of dead letters.",
    )
    replay.add_argument(
        "--reason",
        dest="reasons",
        action="append",
        default=[],
        metavar="REASON",
        help="Dead letters that failed with this reason (repeat it, or separate with commas), e.g. missing_field.",
    )
    replay.add_argument(
        "--route",
        dest="routes",
        action="append",
        default=[],
        metavar="ROUTE",
        help="Only these routes (e.g. cdr-push).",
    )
    replay.add_argument(
        "--tenant",
        dest="tenants",
        action="append",
        default=[],
        metavar="TENANT",
        help=f'Only these tenants ("{NO_TENANT}": the tenant-less routes).',
    )
    replay.add_argument(
        "--ingest-id", dest="ingest_ids", action="append", default=[], metavar="ID", help="Only these requests."
    )
    replay.add_argument(
        "--since",
        default=None,
        metavar="TIME",
        help="Received at or after: a UTC time (2026-11-27T10:00Z) or a time ago (-2h).",
    )
    replay.add_argument("--until", default=None, metavar="TIME", help="Received before (same forms as --since).")
    replay.add_argument("--dry-run", action="store_true", help="Count what would be replayed; publish nothing.")
    replay.add_argument("--json", dest="as_json", action="store_true", help="Print the summary as JSON.")
    config.add_flags(replay)
    load = commands.add_parser(
        "loadgen", help="Simulate the vendors: realistic traffic on every route against an edge URL."
    )
    load.add_argument(
        "--url",
        default=None,
        help="Edge base URL (default: the running `ringback run` of --data-dir, else http://127.0.0.1:8080).",
    )
    load.add_argument(
        "--duration", type=number(0, MAX_SECONDS), default=10.0, help="Seconds to send for (ignored with --requests)."
    )
    load.add_argument("--requests", type=whole_number(0, MAX_COUNT), default=0, help="Send exactly this many requests.")
    load.add_argument(
        "--rate",
        type=number(0, MAX_COUNT),
        default=0.0,
        help="Requests per second (0 = as fast as the connections allow).",
    )
    load.add_argument(
        "--connections", type=whole_number(1, MAX_CONNECTIONS), default=32, help="Concurrent connections."
    )
    load.add_argument(
        "--resend-share", type=number(0, 1), default=0.05, help="Share of requests that resend an earlier body."
    )
    load.add_argument(
        "--malformed-share", type=number(0, 1), default=0.01, help="Share of requests with a truncated body."
    )
    load.add_argument(
        "--mix",
        default=None,
        help="route=weight,... (default: the realistic mix, SMS receipts first: ringback.tools.loadgen.DEFAULT_MIX)",
    )
    load.add_argument("--seed", type=int, default=7, help="Seed of the traffic generator.")
    load.add_argument(
        "--tenant",
        dest="tenant_ids",
        action="append",
        default=[],
        metavar="ID",
        help="Send as this tenant, to /t/ID/SECRET/callbacks/...; repeat (each with its --secret) for several. "
        "Default: every tenant of --tenants-file that has a plain secret, else the tenant-less routes.",
    )
    load.add_argument(
        "--secret",
        dest="tenant_secrets",
        action="append",
        default=[],
        metavar="SECRET",
        help="The secret of the --tenant at the same position.",
    )
    load.add_argument(
        "--apps",
        type=whole_number(1, MAX_CONNECTIONS),
        default=None,
        help="Customer applications sharing the traffic, spread over the tenants (default 5).",
    )
    load.add_argument("--json", dest="as_json", action="store_true", help="Print the summary as JSON.")
    load.add_argument(
        "--drop-cdrs",
        type=number(0, 100),
        default=0.0,
        metavar="PCT",
        help="Percent of answered CDR-platform calls whose CDR is never sent (leakage for `ringback audit`).",
    )
    load.add_argument(
        "--stuck-receipts",
        type=number(0, 100),
        default=0.0,
        metavar="PCT",
        help="Percent of SMS first reported ENROUTE whose final receipt is never sent.",
    )
    load.add_argument(
        "--statement-out",
        default=None,
        metavar="FILE.csv",
        help="Write the statement the CDR platform would send for this run's two-way calls.",
    )
    config.add_flags(load)
    bench = commands.add_parser("bench", help="Measure every stage against its baseline (what `make bench` runs).")
    bench.add_argument("--quick", action="store_true", help="A few seconds per stage: a smoke run, not a measurement.")
    bench.add_argument("--results", default="bench-results", help="Folder for the JSON report and the chart.")
    status = commands.add_parser(
        "status",
        help=(
            "The whole pipeline at a glance: each role ready or why not, lag, journal, dead letters (exit 1 when "
            "something is wrong)."
        ),
        description=(
            "Ask every role for its readiness and metrics (a role that does not answer within 2 s is shown as down); "
            "exit 1 when anything is wrong."
        ),
    )
    status.add_argument("--json", dest="as_json", action="store_true", help="Print the status as JSON.")
    status.add_argument(
        "--max-journal-age-s",
        type=number(0, MAX_SECONDS),
        default=60.0,
        help="A callback not stored after this many seconds is a problem (default 60).",
    )
    for role in ("edge", "normalizer", "sink"):
        status.add_argument(
            f"--{role}",
            dest=f"{role}_url",
            default=None,
            help=(
                f"Base URL of a {role} (its /readyz and /metrics); default: the one `ringback run` started for "
                "--data-dir."
            ),
        )
    config.add_flags(status)
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
    show = commands.add_parser("config", help="Print the effective configuration and where each setting can be set.")
    config.add_flags(show)
    for command in commands.choices.values():
        command.formatter_class = OwnOptionsFirst
    return parser


def glue_times_ago(argv: list[str]) -> list[str]:
    """``--from -1h`` as ``--from=-1h`` (and --since, --until): argparse would take ``-1h`` for an option."""
    glued: list[str] = []
    for arg in argv:
        if glued and glued[-1] in TIME_OPTIONS and AGO.fullmatch(arg):
            glued[-1] = f"{glued[-1]}={arg}"
        else:
            glued.append(arg)
    return glued


def main(argv: list[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)
    args = build_parser().parse_args(glue_times_ago(sys.argv[1:] if argv is None else argv))
    flags = {k: v for k, v in vars(args).items() if k not in NON_SETTING_ARGS}
    if args.command == "run" and flags.get("log_format") is None and config.env_name("log_format") not in os.environ:
        flags["log_format"] = "console"  # a person is watching `ringback run`
    try:
        settings = config.load(flags)
    except ConfigError as exc:
        print(f"ringback: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level, role=args.command)
    try:
        return _dispatch(args, settings)
    except BrokenPipeError:  # `ringback … | head`: the reader has what it wanted
        _silence_stdout()
        return 0


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "sql":
        query = sys.stdin.read() if args.query == STDIN_QUERY else args.query
        given = [*args.output_settings, *([f"session_timezone={args.output_timezone}"] if args.output_timezone else [])]
        return _sql(settings, query, args.output_format, given)
    if args.command == "config":
        return _show_config(settings)
    if args.command == "status":
        return _status(settings, args)
    if args.command == "reconcile":
        return _reconcile(settings, args.hours, args.as_json, settled=args.settled)
    if args.command == "audit":
        return audit.run(settings, args, moment)
    if args.command == "bench":
        from ringback.tools.bench.run import main as bench_main

        return bench_main(quick=args.quick, results_root=args.results)
    if args.command == "bench-queries":
        from ringback.tools.bench import queries

        print(queries.render(queries.run(Path(args.results), args.rows, args.days)))
        return 0
    if args.command == "soak":
        from ringback.tools.bench import soak

        report = soak.run(Path(args.results), args.duration, args.rate, args.warmup)
        print(soak.render(report))
        return 0 if report["lost"] == 0 and report["failed"] == 0 else 1
    if args.command == "loadgen":
        return _loadgen(settings, args)
    if args.command == "tail":
        return _tail(settings, args)
    if args.command == "replay":
        return _replay(settings, args)
    handler, _ = ROLE_COMMANDS[args.command]
    try:
        return handler(settings)
    except KeyboardInterrupt:
        return 0


def setting_pairs(given: list[str]) -> dict[str, str]:
    """``--setting name=value`` (repeated) as a dict; the query guard decides which may be used."""
    pairs: dict[str, str] = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--setting {item!r}: expected NAME=VALUE")
        pairs[name.strip()] = value.strip()
    return pairs


def _sql(settings: Settings, query: str, output_format: str | None, given_settings: list[str]) -> int:
    from ringback.sql import PIPE_FORMAT, TERMINAL_FORMAT, QueryError, run_sql

    default_format = output_format or (TERMINAL_FORMAT if sys.stdout.isatty() else PIPE_FORMAT)
    try:
        pairs = setting_pairs(given_settings)
    except ValueError as exc:
        print(f"ringback sql: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        result = run_sql(settings, query, default_format, output_settings=pairs)
    except QueryError as exc:
        print(f"ringback sql: {exc}", file=sys.stderr)
        return 1
    return _write_quietly(result)


def _write_quietly(result: bytes) -> int:
    """Write to standard output; a reader that went away (``| head``) ends it quietly, like other tools."""
    try:
        sys.stdout.buffer.write(result)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    return 0


def _silence_stdout() -> None:
    """After a broken pipe, point standard output at /dev/null: the interpreter's own flush at exit
    would otherwise report the same broken pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _reconcile(settings: Settings, hours: int, as_json: bool, *, settled: bool = False) -> int:
    import orjson

    from ringback.reconcile import as_json as lines_as_json
    from ringback.reconcile import has_closed_gap, ledger_lines, render
    from ringback.sql import QueryError

    try:
        lines = ledger_lines(settings, hours, settled=settled)
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

    from ringback.runtime import runfiles
    from ringback.tools import loadgen

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
        print(
            f"ringback loadgen: no plain secret for tenants {', '.join(skipped)}: not sending as them", file=sys.stderr
        )
    try:
        leakage = loadgen.Leakage(args.drop_cdrs, args.stuck_receipts, keep_statement=bool(args.statement_out))
    except ValueError as exc:
        print(f"ringback loadgen: {exc}", file=sys.stderr)
        return 2
    plan = loadgen.LoadPlan(
        url=url.rstrip("/"),
        requests=args.requests,
        duration_s=args.duration,
        rate=args.rate,
        connections=args.connections,
        resend_share=args.resend_share,
        malformed_share=args.malformed_share,
        mix=mix,
        seed=args.seed,
        tenants=tenants,
        apps=args.apps or loadgen.DEFAULT_APPS,
        leakage=leakage,
    )
    summary = asyncio.run(loadgen.run(plan, show_progress=sys.stderr.isatty() and not args.as_json))
    print(orjson.dumps(summary.as_dict()).decode() if args.as_json else summary.render())
    if args.statement_out:
        lines = leakage.write_statement(Path(args.statement_out))
        print(f"ringback loadgen: statement of {lines} calls written to {args.statement_out}", file=sys.stderr)
    return 0 if summary.accepted else 1


class TimeOutOfRange(ValueError):
    """A time the command line cannot use: before :data:`EARLIEST_TIME` or after :data:`LATEST_TIME`."""


def moment(text: str, now: datetime) -> datetime:
    """A time given on the command line: a time ago (-15m) or an ISO 8601 time (UTC unless it says
    otherwise), from :data:`EARLIEST_TIME` to :data:`LATEST_TIME`; else a one-line ValueError."""
    out_of_range = TimeOutOfRange(
        f"{text!r}: outside {EARLIEST_TIME:%Y-%m-%d} .. {LATEST_TIME:%Y-%m-%d} (UTC), the times ringback can name"
    )
    ago = AGO.fullmatch(text)
    if ago:
        seconds = float(ago.group(1)) * SECONDS_PER_UNIT[ago.group(2)]
        if not seconds <= (now - EARLIEST_TIME).total_seconds():  # also inf
            raise out_of_range
        return now - timedelta(seconds=seconds)
    try:
        given = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r}: not a time ago like -15m, or an ISO time like 2026-11-27T10:00Z") from None
    given = given if given.tzinfo is not None else given.replace(tzinfo=UTC)
    try:
        within = EARLIEST_TIME <= given <= LATEST_TIME
    except OverflowError:  # an offset that moves the time past year 1 or 9999
        within = False
    if not within:
        raise out_of_range
    return given


def running_broker(settings: Settings) -> str | None:
    """--kafka-bootstrap, else the broker of the running `ringback run` of --data-dir."""
    from ringback.runtime import runfiles

    running = runfiles.read_live(settings.run_dir, "run")
    found = settings.kafka_bootstrap or (running or {}).get("kafka_bootstrap")
    return str(found) if found else None


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    import orjson

    from ringback import replay
    from ringback.sql import QueryError

    bootstrap = running_broker(settings) or ""
    if not bootstrap and (args.from_raw or not args.dry_run):
        print(
            (
                f"ringback replay: no `ringback run` is running with --data-dir {settings.data_dir}; give "
                "--kafka-bootstrap"
            ),
            file=sys.stderr,
        )
        return USAGE_ERROR
    now = datetime.now(UTC)
    try:
        selection = replay.Selection(
            reasons=tuple(_listed(args.reasons)),
            routes=tuple(_listed(args.routes)),
            tenants=tuple(_listed(args.tenants)),
            ingest_ids=tuple(_listed(args.ingest_ids)),
            since=moment(args.since, now) if args.since else None,
            until=moment(args.until, now) if args.until else None,
        )
        if args.from_raw and args.reasons:
            raise replay.SelectionError("--reason chooses dead letters; the raw topic has no reasons")
        run = replay.replay_raw if args.from_raw else replay.replay_dead_letters
        summary = asyncio.run(run(settings, bootstrap, selection, args.dry_run))
    except (ValueError, replay.SelectionError) as exc:
        print(f"ringback replay: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except (QueryError, LookupError) as exc:
        print(f"ringback replay: {exc}", file=sys.stderr)
        return 1
    print(orjson.dumps(summary.as_dict()).decode() if args.as_json else summary.render(settings.topic_raw))
    return 0


def tail_start(text: str, now: datetime) -> Start:
    """``--from``: beginning, end, a time ago (-15m) or an ISO 8601 time (UTC unless it says otherwise)."""
    if text in TAIL_STARTS:
        return text  # type: ignore[return-value]
    try:
        return moment(text, now)
    except TimeOutOfRange as exc:
        raise ValueError(f"--from {exc}") from None
    except ValueError:
        raise ValueError(
            f"--from {text!r}: not beginning, end, a time ago like -15m, or an ISO time like 2026-11-27T10:00Z"
        ) from None


def _listed(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def tail_filter(types: list[str], tenants: list[str]) -> Callable[[Delivered], bool]:
    """Whether an event is wanted: its type matches one of ``types`` (fnmatch patterns) and its tenant
    is one of ``tenants`` (either list empty: any)."""
    from fnmatch import fnmatchcase

    patterns = _listed(types)
    wanted_tenants = {"" if t == NO_TENANT else t for t in _listed(tenants)}

    def wanted(delivered: Delivered) -> bool:
        type_ok = not patterns or any(fnmatchcase(str(delivered.event["event_type"]), p) for p in patterns)
        return type_ok and (not wanted_tenants or delivered.tenant in wanted_tenants)

    return wanted


def tail_line(delivered: Delivered, as_json: bool) -> str:
    """One event as a JSON object, or as a line for people: receive time, type, tenant, app, ordering
    key, status, then charge, seconds and minutes when the event has them, and the event id."""
    import orjson

    from ringback.consumer import iso_utc, json_ready

    event = delivered.event
    if as_json:
        return orjson.dumps(json_ready(event)).decode()
    parts = [
        iso_utc(event["received_at"]),
        str(event["event_type"]),
        delivered.tenant or NO_TENANT,
        event.get("app_id") or NO_TENANT,
        (delivered.key or b"").decode(errors="replace"),
        str(event["status"]),
    ]
    if event.get("charge") is not None:
        parts.append(f"{event['charge']} {event.get('currency') or ''}".rstrip())
    if event.get("duration_s") is not None:
        parts.append(f"{event['duration_s']}s")
    if event.get("billable_minutes") is not None:
        parts.append(f"{event['billable_minutes']}min")
    parts.append(str(event["event_id"]))
    return "  ".join(parts)


def _tail(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    bootstrap = running_broker(settings)
    if not bootstrap:
        print(
            f"ringback tail: no `ringback run` is running with --data-dir {settings.data_dir}; give --kafka-bootstrap",
            file=sys.stderr,
        )
        return USAGE_ERROR
    try:
        start = tail_start(args.start, datetime.now(UTC))
    except ValueError as exc:
        print(f"ringback tail: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        asyncio.run(_print_events(settings, str(bootstrap), start, args))
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `ringback tail | head`: the reader has what it wanted
        _silence_stdout()
    except LookupError as exc:
        print(f"ringback tail: {exc} on {bootstrap}", file=sys.stderr)
        return 1
    return 0


async def _print_events(settings: Settings, bootstrap: str, start: Start, args: argparse.Namespace) -> None:
    from ringback.consumer import EventDecoder, read

    def undecodable(record: Any, error: Exception) -> None:
        print(f"ringback tail: partition {record.partition} offset {record.offset}: {error}", file=sys.stderr)

    wanted = tail_filter(args.types, args.tenants)
    shown = 0
    events = read(
        bootstrap,
        start,
        topic=settings.topic_normalized,
        decoder=EventDecoder(settings.schemas_dir),
        follow=args.follow,
        on_undecodable=undecodable,
    )
    try:
        async for delivered in events:
            if not wanted(delivered):
                continue
            print(tail_line(delivered, args.as_json), flush=True)
            shown += 1
            if args.max_events and shown >= args.max_events:
                break
    finally:
        await events.aclose()  # also when standard output is gone: the broker connection closes in order


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
