"""The OpenAPI document as ``make docs`` writes it: built by ``ringback.tools.openapi`` from the route table
and the bodies beside the adapters, with request examples from the golden fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ringback.edge.openapi import FILE_NAME
from ringback.tools.openapi.document import Example, build, render
from tests.conftest import REPO_ROOT
from tests.golden import cases

DOCUMENT_FILE = REPO_ROOT / "schemas" / FILE_NAME


class DuplicateKey(ValueError):
    pass


def strict_json(data: bytes) -> Any:
    """The body as JSON, or DuplicateKey / ValueError when a vendor shape cannot be shown as a JSON value."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise DuplicateKey(keys)
        return dict(pairs)

    return json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)


def read_in_full(expected_path: Path) -> bool:
    return not any("dead_letter" in outcome for outcome in json.loads(expected_path.read_text(encoding="utf-8")))


def fixture_examples() -> dict[str, list[Example]]:
    """Request examples: each golden fixture whose body is plain JSON and is read without a dead letter."""
    examples: dict[str, list[Example]] = {}
    for case in cases():
        if not read_in_full(case.expected_path):
            continue
        try:
            value = strict_json(case.body_path.read_bytes())
        except ValueError:  # not JSON as written (the vendor's own typo, a key given twice): no example
            continue
        source = case.body_path.relative_to(REPO_ROOT).as_posix()
        examples.setdefault(case.route, []).append(Example(case.body_path.stem, source, value))
    return examples


def document() -> dict[str, Any]:
    return build(fixture_examples())


def rendered() -> str:
    """The text of ``schemas/openapi.json``."""
    return render(document()).decode("utf-8")
