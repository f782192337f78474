"""`ringback reconcile` (the ledger, gaps flagged) and `ringback status` (every role at a glance)."""

from __future__ import annotations

import argparse
import sys

from ringback import config
from ringback.cli.common import MAX_HOURS, MAX_SECONDS, Command, SubParsers, number, whole_number
from ringback.config import Settings


def add_reconcile(commands: SubParsers) -> None:
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


def handle_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    return _reconcile(settings, args.hours, args.as_json, settled=args.settled)


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


def add_status(commands: SubParsers) -> None:
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


def handle_status(args: argparse.Namespace, settings: Settings) -> int:
    import orjson

    from ringback import pipeline_status

    given = {role: getattr(args, f"{role}_url") for role in pipeline_status.ROLES}
    found = pipeline_status.collect(settings, given, args.max_journal_age_s)
    print(orjson.dumps(pipeline_status.as_json(found)).decode() if args.as_json else pipeline_status.render(found))
    return 0 if found.ok else 1


RECONCILE = Command("reconcile", add_reconcile, handle_reconcile)
STATUS = Command("status", add_status, handle_status)
COMMANDS = (RECONCILE, STATUS)
