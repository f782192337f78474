"""promtool (Debian package `prometheus`, installed by `make promtool`, which `make test` runs): where it
is missing, the tests that need it skip with one line saying so."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROMTOOL = shutil.which("promtool")
MISSING = (
    "promtool is not installed (Debian package prometheus; `make promtool` installs it): the Prometheus checks are "
    "skipped"
)


def promtool(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        pytest.skip(MISSING)
    return subprocess.run(
        [PROMTOOL, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
