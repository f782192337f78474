"""The project's documentation as the tests read it: README.md (the front door) and the pages of docs/."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO_ROOT

DOCS_DIR = REPO_ROOT / "docs"
FENCE = re.compile(r"^ *(```|~~~)")
HEADING = re.compile(r"^(#{1,6}) +(.*?) *#*$")


def pages() -> list[Path]:
    """README.md and every page of docs/."""
    return [REPO_ROOT / "README.md", *sorted(DOCS_DIR.glob("*.md"))]


def doc_text(page: str) -> str:
    """One page: "README.md" or a file name in docs/ ("billing.md")."""
    path = REPO_ROOT / page if page == "README.md" else DOCS_DIR / page
    return path.read_text(encoding="utf-8")


def all_docs_text() -> str:
    """README.md and the docs pages, one after the other."""
    return "\n\n".join(path.read_text(encoding="utf-8") for path in pages())


def headings(text: str) -> list[tuple[int, str]]:
    """The (level, text) of each heading outside fenced code blocks."""
    found: list[tuple[int, str]] = []
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := HEADING.match(line)):
            found.append((len(match.group(1)), match.group(2)))
    return found


def section(heading: str) -> str:
    """The text under the heading (on whichever page holds it, at any level) up to the next heading of the same or
    a higher level; the heading may be given by its start ("Billing queries")."""
    for path in pages():
        lines = path.read_text(encoding="utf-8").splitlines()
        fenced = False
        start: int | None = None
        level = 0
        for i, line in enumerate(lines):
            if FENCE.match(line):
                fenced = not fenced
                continue
            match = None if fenced else HEADING.match(line)
            if not match:
                continue
            if start is not None and len(match.group(1)) <= level:
                return "\n".join(lines[start:i]) + "\n"
            if start is None and match.group(2).startswith(heading):
                start, level = i + 1, len(match.group(1))
        if start is not None:
            return "\n".join(lines[start:]) + "\n"
    raise LookupError(f"no page of the docs has a heading {heading!r}")
