"""Every command's --help shows what is its own first; the shared configuration flags come after."""

from __future__ import annotations

import argparse
import re

import pytest

from ringback import cli


def commands() -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def listed_at(text: str, option: str) -> int:
    """Where the help lists ``option`` (its own line in a section), or -1."""
    found = re.search(rf"^  {re.escape(option)}\b", text, re.MULTILINE)
    return found.start() if found else -1


@pytest.mark.parametrize("name", sorted(commands()))
def test_a_commands_own_options_come_first(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    command = commands()[name]
    text = command.format_help()
    usage = text.split("\n\n", 1)[0]
    own = [a for a in command._actions if not cli._is_configuration(a)]
    configuration = [a for a in command._actions if cli._is_configuration(a)]

    for action in own:
        shown = action.option_strings[0] if action.option_strings else action.dest
        assert shown in usage, (name, shown)
    for action in configuration:
        assert not re.search(rf"{re.escape(action.option_strings[0])}\b", usage), (name, action.option_strings[0])
    if not configuration:
        return
    assert cli.CONFIGURATION_USAGE in usage
    assert len(usage.splitlines()) <= 6, usage  # the ~60 configuration flags take none of these lines
    own_last = max(listed_at(text, a.option_strings[0] if a.option_strings else a.dest) for a in own)
    configuration_first = min(listed_at(text, a.option_strings[0]) for a in configuration)
    assert 0 <= own_last < configuration_first, name


def test_every_command_is_checked() -> None:
    assert {"run", "sql", "tail", "reconcile", "status", "loadgen", "config"} <= set(commands())


def test_errors_show_the_short_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["sql"])
    err = capsys.readouterr().err
    assert "--data-dir" not in err and "query" in err
