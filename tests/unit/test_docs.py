"""The docs hold together: the generated parts are current, every relative link and anchor resolves, the front
door stays short, and the split of the whole manual into pages puts an unknown section somewhere and says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import docs, docs_split, regen_docs
from tests.conftest import REPO_ROOT

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text outside fenced code blocks (a `](` in code is no link)."""
    kept: list[str] = []
    fenced = False
    for line in text.splitlines():
        if docs.FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return "\n".join(kept)


def anchors(path: Path) -> set[str]:
    return {docs_split.slug(heading) for _, heading in docs.headings(path.read_text(encoding="utf-8"))}


@pytest.mark.parametrize("path", list(regen_docs.generated()), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_the_generated_parts_are_current(path: Path) -> None:
    assert path.read_text(encoding="utf-8") == regen_docs.generated()[path], (
        f"{path.relative_to(REPO_ROOT)} differs from what the code and schema say: run `make docs` and review"
    )


@pytest.mark.parametrize("page", docs.pages(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken: list[str] = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # a URL
        file_part, _, anchor = target.partition("#")
        resolved = (page.parent / file_part).resolve() if file_part else page
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {resolved.name}")
    assert not broken, f"{page.relative_to(REPO_ROOT)}: " + "; ".join(broken)


def test_the_front_door_is_short_and_leads_to_every_page() -> None:
    readme = docs.doc_text("README.md")
    assert readme.count("\n") <= docs_split.MAX_FRONT_LINES
    linked = set(LINK.findall(readme))
    for page in sorted(docs.DOCS_DIR.glob("*.md")):
        assert f"docs/{page.name}" in linked, f"README.md's table does not lead to docs/{page.name}"


def whole_manual(extra: str) -> str:
    """A manual with every known heading, one unknown `##` with a `###` of its own, and links across pages."""
    lines = ["# ringback", "", "What it is; [the guarantees](#delivery-guarantees).", ""]
    for heading in docs_split.FRONT_HEADINGS:
        lines += [f"## {heading}", "", f"About {heading}.", ""]
    for page in docs_split.PAGES:
        for heading in page.headings:
            lines += [
                f"## {heading}",
                "",
                f"About {heading}; see [the layout](#layout) and [x](examples/README.md).",
                "",
            ]
    return "\n".join(lines) + extra


def test_the_split_names_an_unknown_section_and_puts_it_on_a_fitting_page() -> None:
    readme, pages, warnings = docs_split.split(
        whole_manual("\n## Statement audit and revenue assurance\n\nNew.\n\n### Its detail\n\nMore.\n")
    )
    assert warnings == [
        "unmapped heading ## 'Statement audit and revenue assurance' -> docs/billing.md",
        "unmapped heading ### 'Its detail' -> docs/billing.md",
    ]
    assert "## Statement audit and revenue assurance" in pages["billing.md"] and "More." in pages["billing.md"]
    assert "[the guarantees](docs/guarantees.md#delivery-guarantees)" in readme
    assert "[the layout](development.md#layout)" in pages["vendors.md"]
    assert "[the layout](#layout)" in pages["development.md"]
    assert "[x](../examples/README.md)" in pages["event.md"]
    assert all(f"(docs/{name})" in readme for name in pages)


def test_the_split_refuses_a_readme_already_split() -> None:
    with pytest.raises(SystemExit):
        docs_split.split(docs.doc_text("README.md"))
