"""Rewrite the README's configuration table from config.py (the test in tests/unit/test_readme.py checks it)."""

from __future__ import annotations

import re

from ringback import config
from tests.conftest import REPO_ROOT


def table() -> str:
    lines = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    lines += [
        f"| `{flag}` | `{env}` | `{default}` | {help_text} |" for flag, env, default, help_text in config.describe()
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    path = REPO_ROOT / "README.md"
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"\| flag \| environment \| default \| meaning \|\n(?:\|.*\|\n)+", lambda _: table(), text, count=1)
    path.write_text(text, encoding="utf-8")
