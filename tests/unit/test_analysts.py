"""Analyst accounts: the file validated with clear errors, reloaded only when valid, passwords compared as
digests; without a file only loopback clients, as `default`. The HTTP interface's URL parameters:
output settings kept, the client's session parameters and insert-only settings ignored, others refused."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import pytest
import structlog

from ringback.sink import http_interface
from ringback.sink.analysts import AnalystsError, AnalystSource, load

PASSWORD = "a-password-of-20-chars"
GOOD = f"""
[[analysts]]
name = "finance"
password = "{PASSWORD}"
tenants = ["*"]
[[analysts]]
name = "acme-ops"
password_sha256 = "{hashlib.sha256(b"another-long-password").hexdigest()}"
tenants = ["acme", "acme-eu"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "analysts.toml"
    path.write_text(text)
    return path


def test_a_valid_file_gives_each_account_its_tenants(tmp_path: Path) -> None:
    accounts = load(write(tmp_path, GOOD))
    assert accounts["finance"].tenants is None
    assert accounts["acme-ops"].tenants == frozenset({"acme", "acme-eu"})


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "no [[analysts]]"),
        ("[[analysts]]\nname = 'x'\npassword = 'short'\ntenants = ['*']", "at least 16"),
        ("[[analysts]]\nname = 'x'\ntenants = ['*']", "exactly one of password"),
        (
            f"[[analysts]]\nname = 'x'\npassword = '{PASSWORD}'\npassword_sha256 = '{'0' * 64}'\ntenants = ['*']",
            "one of",
        ),
        ("[[analysts]]\nname = 'x'\npassword_sha256 = 'abc'\ntenants = ['*']", "64 hex"),
        (f"[[analysts]]\nname = 'x'\npassword = '{PASSWORD}'\ntenants = []", "non-empty list"),
        (f"[[analysts]]\nname = 'x'\npassword = '{PASSWORD}'", "non-empty list"),
        (f"[[analysts]]\nname = 'x'\npassword = '{PASSWORD}'\ntenants = ['*', 'acme']", "cannot be listed"),
        (f"[[analysts]]\nname = 'x'\npassword = '{PASSWORD}'\ntenants = [\"a'b\"]", "not a tenant id"),
        (f"[[analysts]]\nname = 'bad name'\npassword = '{PASSWORD}'\ntenants = ['*']", "name must be"),
        (f"[[analysts]]\nname = 'x'\npassword = '{PASSWORD}'\ntenants = ['*']\nrole = 'admin'", "unknown keys"),
        ("[[analysts]\n", "not TOML"),
        (f"[[analysts]]\nname='x'\npassword='{PASSWORD}'\ntenants=['*']\n" * 2, "given twice"),
    ],
)
def test_a_bad_file_is_refused_with_what_is_wrong(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(AnalystsError, match=re.escape(says)) as refused:
        load(write(tmp_path, text))
    assert PASSWORD not in str(refused.value)


def test_credentials_checked_against_the_digest(tmp_path: Path) -> None:
    source = AnalystSource(str(write(tmp_path, GOOD)))
    assert source.authenticate("finance", PASSWORD, "203.0.113.9") is not None
    assert source.authenticate("acme-ops", "another-long-password", "127.0.0.1") is not None
    assert source.authenticate("finance", PASSWORD + "x", "127.0.0.1") is None
    assert source.authenticate("nobody", PASSWORD, "127.0.0.1") is None
    assert source.authenticate("", "", "127.0.0.1") is None  # with a file, no loopback default


def test_without_a_file_only_loopback_clients_as_default() -> None:
    source = AnalystSource("")
    assert source.authenticate("", "", "127.0.0.1") is not None
    assert source.authenticate("default", "", "::1") is not None
    assert source.authenticate("", "", "192.0.2.7") is None
    assert source.authenticate("finance", "", "127.0.0.1") is None
    assert source.authenticate("", "", None) is None


def test_a_broken_new_file_keeps_the_accounts_in_force(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    source = AnalystSource(str(path))
    path.write_text("[[analysts]]\nname = 'x'\n")
    assert not source.reload()
    assert source.authenticate("finance", PASSWORD, "127.0.0.1") is not None
    path.write_text(f"[[analysts]]\nname = 'ops'\npassword = '{PASSWORD}'\ntenants = ['acme']\n")
    os.utime(path)
    assert source.reload()
    assert source.authenticate("finance", PASSWORD, "127.0.0.1") is None
    assert source.authenticate("ops", PASSWORD, "127.0.0.1") is not None


def test_url_parameters_output_settings_kept_session_ignored_others_refused() -> None:
    params = {
        "session_id": "s",
        "query_id": "q",
        "compress": "1",
        "date_time_input_format": "best_effort",
        "input_format_null_as_default": "1",
        "wait_end_of_query": "1",
        "output_format_json_quote_decimals": "1",
        "max_execution_time": "100000",
    }
    assert http_interface.output_settings(params) == {"output_format_json_quote_decimals": "1"}
    for refused in ("allow_ddl", "readonly_x", "additional_table_filters", "param_x", "log_queries"):
        with pytest.raises(http_interface.ClickHouseError) as error:
            http_interface.output_settings({refused: "1"})
        assert error.value.code == http_interface.READONLY and refused in error.value.message


def test_engine_errors_keep_their_code_and_status() -> None:
    error = http_interface.engine_error(RuntimeError("blah Code: 60. DB::Exception: Unknown table x. (UNKNOWN_TABLE)"))
    response = error.response()
    assert (error.code, response.status, response.headers[http_interface.EXCEPTION_CODE_HEADER]) == (60, 404, "60")
    assert response.text is not None and response.text.startswith("Code: 60. DB::Exception: Unknown table")


@pytest.mark.parametrize("command", ["run", "sink"])
def test_a_bad_file_stops_the_start_with_what_is_wrong(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ringback import cli

    bad = write(tmp_path, "[[analysts]]\nname = 'x'\npassword = 'short'\ntenants = ['*']\n")
    saved, handlers = structlog.get_config(), logging.getLogger().handlers[:]
    try:
        assert cli.main([command, "--analysts-file", str(bad), "--data-dir", str(tmp_path / "data")]) == 2
    finally:  # the command points the log at this test's captured output, which closes with the test
        structlog.configure(**saved)
        logging.getLogger().handlers[:] = handlers
    assert "at least 16 characters" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
