"""Every number the command line takes is bounded and read without overflow: a clear one-line error
(exit 2), never a traceback; and a reader that goes away (``| head``) ends a command quietly."""

from __future__ import annotations

import subprocess

import pytest

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
