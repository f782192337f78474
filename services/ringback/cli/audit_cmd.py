"""`ringback audit`: missing CDRs, stuck messages, charge differences, a vendor statement checked."""

from __future__ import annotations

import argparse

from ringback import audit, config
from ringback.cli.common import Command, SubParsers, moment
from ringback.config import Settings


def add_parser(commands: SubParsers) -> None:
    audit.add_parser(commands, config.add_flags)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    return audit.run(settings, args, moment)


COMMANDS = (Command("audit", add_parser, handle),)
