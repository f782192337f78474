"""The docs say what the code does: the configuration table is config.py's, every route, status and vendor code is
documented, and the front door shows the two commands."""

from __future__ import annotations

import re

from ringback import config
from tests.docs import all_docs_text, doc_text, section


def test_the_configuration_page_lists_every_setting_with_its_default() -> None:
    page = doc_text("configuration.md")
    for flag, env, default, help_text in config.describe():
        assert f"| `{flag}` | `{env}` | `{default}` | {help_text} |" in page, (
            f"docs/configuration.md misses or misstates {flag}: run `make docs`"
        )


def test_readme_shows_the_two_commands() -> None:
    readme = doc_text("README.md")
    assert "make run" in readme and "make test" in readme


def test_the_docs_document_every_route_status_and_vendor_code() -> None:
    from ringback.normalizer import status
    from ringback.normalizer.adapters.cdr_push import STATE_DESC
    from ringback.routes import ROUTES

    readme = all_docs_text()
    for route in ROUTES:
        assert f"`POST {route.path}`" in readme, route
    # The vocabulary paragraph names every status, and nothing else, in code spans.
    vocabulary = section("Status vocabulary and the mapping of every vendor code").split(
        "The raw value is always kept", 1
    )[0]
    assert set(re.findall(r"`([a-z_]+)`", vocabulary)) == set(status.ALL)
    for code in STATE_DESC:
        assert code in readme, code


def test_the_docs_map_every_tencent_voice_failure_code_as_the_adapter_does() -> None:
    from ringback.normalizer.adapters.tencent_voice_status import FAILURE_STATUS

    readme = all_docs_text()
    (row,) = [line for line in readme.splitlines() if line.startswith("| Tencent voice `failure_code`")]
    for code, state in FAILURE_STATUS.items():
        assert re.search(rf"`{code}` [^;|]*→ {state}[;.]", row), f"the docs miss or misstate failure_code {code}"
