"""`ringback sql`: one read-only query against the store."""

from __future__ import annotations

import argparse
import sys

from ringback import config
from ringback.cli.common import USAGE_ERROR, Command, SubParsers, write_quietly
from ringback.config import Settings

#: `ringback sql -` reads the query from standard input.
STDIN_QUERY = "-"


def add_parser(commands: SubParsers) -> None:
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
            "output_format_json_quote_decimals=1 prints money as JSON strings; see docs/analysts.md: Analyst queries."
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


def handle(args: argparse.Namespace, settings: Settings) -> int:
    query = sys.stdin.read() if args.query == STDIN_QUERY else args.query
    given = [*args.output_settings, *([f"session_timezone={args.output_timezone}"] if args.output_timezone else [])]
    return _sql(settings, query, args.output_format, given)


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
    return write_quietly(result)


COMMANDS = (Command("sql", add_parser, handle),)
