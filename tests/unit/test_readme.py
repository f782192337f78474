"""The README's configuration table is the configuration: it cannot drift from config.py."""

from __future__ import annotations

import re

from ringback import config
from tests.conftest import REPO_ROOT


def test_readme_lists_every_setting_with_its_default() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for flag, env, default, help_text in config.describe():
        assert f"| `{flag}` | `{env}` | `{default}` | {help_text} |" in readme, f"README misses or misstates {flag}"


def test_readme_shows_the_two_commands() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "make run" in readme and "make test" in readme


def test_readme_documents_every_route_status_and_vendor_code() -> None:
    from ringback.normalizer import status
    from ringback.normalizer.adapters.cdr_push import STATE_DESC
    from ringback.routes import ROUTES

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for route in ROUTES:
        assert f"`POST {route.path}`" in readme, route
    # The vocabulary paragraph names every status, and nothing else, in code spans.
    vocabulary = readme.split("### Status vocabulary and the mapping of every vendor code\n", 1)[1].split(
        "The raw value is always kept", 1
    )[0]
    assert set(re.findall(r"`([a-z_]+)`", vocabulary)) == set(status.ALL)
    for code in STATE_DESC:
        assert code in readme, code


def test_readme_maps_every_tencent_voice_failure_code_as_the_adapter_does() -> None:
    from ringback.normalizer.adapters.tencent_voice_status import FAILURE_STATUS

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in readme.splitlines() if line.startswith("| Tencent voice `failure_code`")]
    for code, state in FAILURE_STATUS.items():
        assert re.search(rf"`{code}` [^;|]*→ {state}[;.]", row), f"README misses or misstates failure_code {code}"
