"""`ringback config`: the effective configuration and where each setting can be set."""

from __future__ import annotations

import argparse

from ringback import config
from ringback.cli.common import Command, SubParsers
from ringback.config import Settings


def add_parser(commands: SubParsers) -> None:
    show = commands.add_parser("config", help="Print the effective configuration and where each setting can be set.")
    config.add_flags(show)


def handle(_args: argparse.Namespace, settings: Settings) -> int:
    for flag, env, _default, _help in config.describe():
        name = flag[2:].replace("-", "_")
        print(f"{name:24} = {getattr(settings, name)!s:40}  ({flag}, {env})")
    return 0


COMMANDS = (Command("config", add_parser, handle),)
