"""Saved view files are read from the folder itself: no link followed, nothing but a bounded regular file
that starts like a SELECT, and a refusal never says what a file holds (no engine needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ringback.sink import analyst_views

SECRET = "SECRET-CANARY-7f3a91"
TENANTS = f'[tenants.acme]\nsecret = "{SECRET}"\n'


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "tenants.toml").write_text(TENANTS)
    views = tmp_path / "views"
    views.mkdir()
    (views / "good.sql").write_text("-- the count\n/* of events */ SELECT count() FROM ringback.events;\n")
    return views


def refusals(folder: Path) -> dict[str, str]:
    files, refused = analyst_views.read_folder(folder)
    assert [view.name for view in files] == ["good"]
    return {refusal.path.name: refusal.reason for refusal in refused}


def assert_refused_without_content(folder: Path, name: str, why: str) -> None:
    reasons = refusals(folder)
    assert why in reasons[name]
    assert SECRET not in reasons[name] and "tenants" not in reasons[name]


def test_a_symbolic_link_to_a_file_outside_is_not_followed(folder: Path) -> None:
    (folder / "leak.sql").symlink_to(folder.parent / "tenants.toml")
    assert_refused_without_content(folder, "leak.sql", "a symbolic link")


def test_a_relative_link_out_of_the_folder_is_not_followed(folder: Path) -> None:
    (folder / "up.sql").symlink_to("../tenants.toml")
    assert_refused_without_content(folder, "up.sql", "a symbolic link")


def test_a_link_to_another_view_file_inside_is_not_followed_either(folder: Path) -> None:
    (folder / "alias.sql").symlink_to("good.sql")
    assert_refused_without_content(folder, "alias.sql", "a symbolic link")


def test_a_hard_link_to_a_file_elsewhere_is_refused(folder: Path) -> None:
    os.link(folder.parent / "tenants.toml", folder / "hard.sql")
    assert_refused_without_content(folder, "hard.sql", "hard links")


def test_a_file_that_does_not_start_like_a_select_never_reaches_the_engine(folder: Path) -> None:
    (folder / "copied.sql").write_text(TENANTS)
    assert_refused_without_content(folder, "copied.sql", "does not start with SELECT or WITH")


@pytest.mark.parametrize(
    "text",
    [
        "SELECT 1",
        "select 1",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "(SELECT 1) EXCEPT (SELECT 2)",
        "# c\n-- d\nSELECT 1",
    ],
)
def test_what_starts_like_a_select_is_read(tmp_path: Path, text: str) -> None:
    (tmp_path / "v.sql").write_text(text)
    files, refused = analyst_views.read_folder(tmp_path)
    assert [view.query for view in files] == [text] and refused == []


def test_a_fifo_or_a_folder_named_like_a_view_is_refused_without_waiting(folder: Path) -> None:
    os.mkfifo(folder / "pipe.sql")
    (folder / "dir.sql").mkdir()
    reasons = refusals(folder)
    assert reasons["pipe.sql"] == reasons["dir.sql"] == "not a regular file"


def test_a_file_over_the_bound_is_refused_by_its_size(folder: Path) -> None:
    (folder / "huge.sql").write_text("SELECT 1 -- " + SECRET * (analyst_views.MAX_FILE_BYTES // len(SECRET) + 1))
    assert_refused_without_content(folder, "huge.sql", f"more than {analyst_views.MAX_FILE_BYTES}")


def test_the_engines_refusal_is_logged_without_its_echo_of_the_statement() -> None:
    message = (
        "Code: 60. DB::Exception: Unknown table expression identifier 'ringback.nope' in scope SELECT "
        f"'{SECRET}' AS s FROM ringback.nope. (UNKNOWN_TABLE) (version 26.9.2.1)\nStack trace: ..."
    )
    reason = analyst_views.engine_reason(message)
    assert SECRET not in reason and "SELECT" not in reason
    assert "Unknown table expression identifier 'ringback.nope'" in reason and "UNKNOWN_TABLE" in reason
    typed = analyst_views.engine_reason(
        f"Code: 43. DB::Exception: Illegal type String of argument of function plus: In scope SELECT '{SECRET}' + 1. "
        "(ILLEGAL_TYPE_OF_ARGUMENT)"
    )
    assert SECRET not in typed and "ILLEGAL_TYPE_OF_ARGUMENT" in typed
