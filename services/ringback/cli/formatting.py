"""Every command's help: its own options first, the configuration flags they all share after."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ringback.config import Settings

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
