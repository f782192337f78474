"""`ringback replay`: dead letters, or the raw topic's requests of a time range, through the current
adapters again."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from ringback import config
from ringback.cli.common import NO_TENANT, USAGE_ERROR, Command, SubParsers, listed, moment, running_broker
from ringback.config import Settings


def add_parser(commands: SubParsers) -> None:
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


def handle(args: argparse.Namespace, settings: Settings) -> int:
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
            reasons=tuple(listed(args.reasons)),
            routes=tuple(listed(args.routes)),
            tenants=tuple(listed(args.tenants)),
            ingest_ids=tuple(listed(args.ingest_ids)),
            since=option_moment("--since", args.since, now),
            until=option_moment("--until", args.until, now),
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


COMMANDS = (Command("replay", add_parser, handle),)


def option_moment(option: str, text: str | None, now: datetime) -> datetime | None:
    """The time an option gives (None without one); its error names the option."""
    if not text:
        return None
    try:
        return moment(text, now)
    except ValueError as exc:
        raise ValueError(f"{option} {exc}") from None
