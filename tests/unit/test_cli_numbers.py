"""Every number the command line takes is bounded and read without overflow: a clear one-line error
(exit 2), never a traceback; and a reader that goes away (``| head``) ends a command quietly."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from ringback import cli, config
from tests.pipeline import ringback


@pytest.mark.parametrize(
    "argv",
    [
        ["reconcile", "--hours", "99999999999999"],
        ["reconcile", "--hours", "0"],
        ["tail", "--max", "-1"],
        ["loadgen", "--rate", "nan"],
        ["loadgen", "--duration", "inf"],
        ["loadgen", "--duration", "1e400"],
        ["loadgen", "--connections", "0"],
        ["loadgen", "--resend-share", "1.5"],
        ["loadgen", "--requests", "-3"],
        ["status", "--max-journal-age-s", "nan"],
        ["soak", "--warmup", "-1"],
        ["bench-queries", "--rows", "0"],
    ],
)
def test_an_option_out_of_its_bounds_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(argv)
    assert exited.value.code == cli.USAGE_ERROR
    assert "Traceback" not in capsys.readouterr().err


def test_options_within_their_bounds_are_read() -> None:
    args = cli.build_parser().parse_args(["loadgen", "--rate", "0", "--duration", "2.5", "--resend-share", "1"])
    assert (args.rate, args.duration, args.resend_share) == (0.0, 2.5, 1.0)
    assert cli.build_parser().parse_args(["reconcile", "--hours", str(cli.MAX_HOURS)]).hours == cli.MAX_HOURS


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_a_setting_that_is_no_finite_number_is_a_configuration_error(value: str) -> None:
    with pytest.raises(config.ConfigError, match="query_timeout_s"):
        config.load({"query_timeout_s": value}, environ={})


def test_a_closed_standard_output_ends_a_command_quietly() -> None:
    command = subprocess.Popen(ringback("config"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert command.stdout is not None and command.stderr is not None
    command.stdout.close()  # gone before the command writes its first line
    stderr = command.stderr.read()
    assert command.wait(timeout=60) == 0, stderr
    assert stderr == b"", stderr


@pytest.fixture
def in_process() -> Iterator[None]:
    """Puts back what `ringback` changes in its process: the log (pointed at this test's captured output,
    which closes with the test) and the umask."""
    saved, handlers, level = structlog.get_config(), logging.getLogger().handlers[:], logging.getLogger().level
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        yield
    finally:
        structlog.configure(**saved)
        logging.getLogger().handlers[:] = handlers
        logging.getLogger().setLevel(level)
        os.umask(umask)


@pytest.mark.usefixtures("in_process")
@pytest.mark.parametrize(
    "argv",
    [
        ["replay", "--since", "-99999999d"],
        ["replay", "--raw", "--since", "-99999999d"],
        ["replay", "--dry-run", "--until", "-99999999d"],
        ["replay", "--since=2300-01-01T00:00Z"],
        ["tail", "--from", "-99999999d"],
    ],
)
def test_a_time_out_of_range_is_a_one_line_usage_error_of_the_command(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole command, from its command line to the point it would connect (to nothing: the broker
    given is closed), fails on the time alone."""
    closed = ["--data-dir", str(tmp_path / "data"), "--kafka-bootstrap", "127.0.0.1:9"]
    assert cli.main([*argv, *closed]) == cli.USAGE_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"ringback {argv[0]}: ") and "outside 1970-01-01 .. 2299-12-31 (UTC)" in err, err
    option = next(arg.split("=")[0] for arg in argv if arg.split("=")[0] in ("--since", "--until", "--from"))
    assert err.startswith(f"ringback {argv[0]}: {option} "), err  # the error names the option it is about


@pytest.mark.usefixtures("in_process")
def test_tail_takes_no_since_and_says_so_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["tail", "--since", "-99999999d"])
    assert exited.value.code == cli.USAGE_ERROR
    err = capsys.readouterr().err
    assert "unrecognized arguments: --since" in err and "Traceback" not in err, err
