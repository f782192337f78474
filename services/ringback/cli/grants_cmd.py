"""`ringback analysts-sql`: the analysts file as users, a role and row policies for a ClickHouse server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ringback import config
from ringback.cli.common import Command, SubParsers
from ringback.config import Settings


def add_parser(commands: SubParsers) -> None:
    command = commands.add_parser(
        "analysts-sql",
        help=(
            "Print the SQL that gives a ClickHouse server the analysts file's accounts: a read-only role, a user "
            "per analyst, row policies limiting tenant-limited analysts to their tenants' rows."
        ),
    )
    config.add_flags(command)


def handle(_args: argparse.Namespace, settings: Settings) -> int:
    from ringback.sink import analysts, server_grants

    if not settings.analysts_file:
        print("ringback analysts-sql: give --analysts-file (or RINGBACK_ANALYSTS_FILE)", file=sys.stderr)
        return 2
    try:
        accounts = analysts.load(Path(settings.analysts_file))
    except analysts.AnalystsError as exc:
        print(f"ringback analysts-sql: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(server_grants.grants_sql(accounts, server_grants.tenant_tables(settings.schemas_dir)))
    return 0


COMMANDS = (Command("analysts-sql", add_parser, handle),)
