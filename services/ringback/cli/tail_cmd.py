"""`ringback tail`: the normalized events, decoded, one per line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ringback import config
from ringback.cli.common import (
    MAX_COUNT,
    NO_TENANT,
    USAGE_ERROR,
    Command,
    SubParsers,
    TimeOutOfRange,
    listed,
    moment,
    running_broker,
    silence_stdout,
    whole_number,
)
from ringback.config import Settings

if TYPE_CHECKING:
    from ringback.consumer import Delivered, Start

TAIL_STARTS = ("beginning", "end")


def add_parser(commands: SubParsers) -> None:
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


def tail_filter(types: list[str], tenants: list[str]) -> Callable[[Delivered], bool]:
    """Whether an event is wanted: its type matches one of ``types`` (fnmatch patterns) and its tenant
    is one of ``tenants`` (either list empty: any)."""
    from fnmatch import fnmatchcase

    patterns = listed(types)
    wanted_tenants = {"" if t == NO_TENANT else t for t in listed(tenants)}

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


def handle(args: argparse.Namespace, settings: Settings) -> int:
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
        silence_stdout()
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


COMMANDS = (Command("tail", add_parser, handle),)
