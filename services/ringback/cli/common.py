"""What the command groups share: the bounds of numeric options, times given on the command line,
the running broker, and quiet output to a reader that went away."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from ringback.config import Settings

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: `ringback tail --tenant -`: the events of the tenant-less routes.
NO_TENANT = "-"
#: `ringback tail --from -15m`: how long ago, in seconds per unit.
AGO = re.compile(r"-(\d+(?:\.\d+)?)([smhd])")
SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
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


@dataclass(frozen=True)
class Command:
    """One `ringback` command: how it adds its subparser, and what runs it."""

    name: str
    add_parser: Callable[[SubParsers], None]
    handle: Callable[[argparse.Namespace, Settings], int]


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


def listed(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def write_quietly(result: bytes) -> int:
    """Write to standard output; a reader that went away (``| head``) ends it quietly, like other tools."""
    try:
        sys.stdout.buffer.write(result)
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    return 0


def silence_stdout() -> None:
    """After a broken pipe, point standard output at /dev/null: the interpreter's own flush at exit
    would otherwise report the same broken pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
