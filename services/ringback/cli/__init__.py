"""The `ringback` command line: one module per command group, each adding its commands' subparsers
and handlers."""

from __future__ import annotations

import argparse
import os
import sys

from ringback import __version__, config, logs
from ringback.cli import (
    audit_cmd,
    bench_cmd,
    checks_cmd,
    config_cmd,
    grants_cmd,
    loadgen_cmd,
    replay_cmd,
    roles_cmd,
    sql_cmd,
    tail_cmd,
)
from ringback.cli.common import AGO, MAX_HOURS, USAGE_ERROR, Command, moment, silence_stdout
from ringback.cli.formatting import CONFIGURATION_USAGE, OwnOptionsFirst, _is_configuration
from ringback.cli.sql_cmd import setting_pairs
from ringback.cli.tail_cmd import tail_filter, tail_line, tail_start
from ringback.config import ConfigError

__all__ = [
    "CONFIGURATION_USAGE",
    "MAX_HOURS",
    "USAGE_ERROR",
    "_is_configuration",
    "build_parser",
    "glue_times_ago",
    "main",
    "moment",
    "setting_pairs",
    "tail_filter",
    "tail_line",
    "tail_start",
]

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
#: Options that take a time, which may be a time ago (-15m).
TIME_OPTIONS = ("--from", "--since", "--until")
#: Everything ringback creates (data directory, store, spool, run files, reports) is its owner's alone;
#: children of `ringback run` inherit it.
PRIVATE_UMASK = 0o077
GROUPS = (
    roles_cmd,
    sql_cmd,
    checks_cmd,
    audit_cmd,
    tail_cmd,
    replay_cmd,
    loadgen_cmd,
    bench_cmd,
    config_cmd,
    grants_cmd,
)
COMMANDS: dict[str, Command] = {command.name: command for group in GROUPS for command in group.COMMANDS}
#: The order `ringback --help` lists the commands in.
ORDER = (
    "run",
    "edge",
    "normalizer",
    "sink",
    "broker",
    "sql",
    "reconcile",
    "audit",
    "tail",
    "replay",
    "loadgen",
    "bench",
    "status",
    "soak",
    "bench-queries",
    "analysts-sql",
    "config",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ringback", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"ringback {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in ORDER:
        COMMANDS[name].add_parser(commands)
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
        return COMMANDS[args.command].handle(args, settings)
    except BrokenPipeError:  # `ringback … | head`: the reader has what it wanted
        silence_stdout()
        return 0
