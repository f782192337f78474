"""Split the whole manual (one long README) into the front door, README.md, and one page per topic in docs/.

    python -m tests.docs_split [FULL_README] [--check]

FULL_README (default README.md) is the manual with every `##`/`###` section. Each section goes to the page
its heading maps to (PAGES below); a `###` without a mapping of its own follows its `##`. A heading not in
the map goes to the page its words suggest, else to its parent's or the previous section's page, and a
warning names it and its page. Links to headings and files are rewritten for the page they now sit on.
The front door keeps the opening (what ringback is, the diagram), the two commands and the first
callback and query, and ends with a table of the pages. Then `python -m tests.regen_docs` (`make docs`)
regenerates the generated parts. `--check` writes nothing and exits 1 when a heading is unmapped.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO_ROOT

FRONT = "README.md"
DOCS = "docs"
MAX_FRONT_LINES = 250


@dataclass(frozen=True)
class Page:
    file: str
    title: str
    what: str
    #: Headings (their text, without the #s) whose sections this page holds, in any order.
    headings: tuple[str, ...]
    #: Words that send an unknown heading here (lower case, matched as word prefixes).
    words: tuple[str, ...] = ()
    #: A paragraph under the page's title, before its first section.
    intro: str = ""


PAGES = [
    Page(
        "vendors.md",
        "Vendors and routes",
        "every route, the vendor it serves and its replies; how each vendor's pushes are read",
        (
            "Vendor routes and replies",
            "Click-to-call push bodies (not published in seed 004)",
            "Tencent voice pushes",
            "Tencent SMS replies",
        ),
        ("vendor", "route", "tencent", "click-to-call", "cdr push", "seed"),
    ),
    Page(
        "event.md",
        "The normalized event",
        "the one Avro event: event types, ids, the status vocabulary, times, money, messy input",
        (
            "The normalized event",
            "Event types",
            "Event ids",
            "Status vocabulary and the mapping of every vendor code",
            "Times, money, numbers",
            "`occurred_at`: when it happened, per event type",
            "Messy input: what is repaired, what is dead-lettered",
        ),
        ("event", "status", "avro", "schema", "field", "time"),
        "Every field with its Avro type, default and meaning: [Event fields](event-fields.md) (generated).",
    ),
    Page(
        "guarantees.md",
        "Delivery guarantees",
        "why an acknowledged callback is never lost nor counted twice; reconciliation",
        ("Delivery guarantees", "Reconciliation"),
        ("guarantee", "durab", "exactly", "journal", "reconcil", "crash", "loss"),
    ),
    Page(
        "billing.md",
        "Billing",
        "exact billing queries, billing jobs on the normalized topic, rate cards, revenue assurance, statement audit",
        (
            "Billing queries (exact under duplicates)",
            "Billing jobs on the normalized topic",
            "Rates, revenue assurance and statement audit",
        ),
        ("billing", "bill", "charge", "rate", "revenue", "statement", "invoice", "tariff", "price"),
    ),
    Page(
        "operations.md",
        "Operating ringback",
        "the commands, health and readiness, metrics and alerts, repairing dead letters",
        ("Commands", "Operating it", "Repairing dead letters"),
        ("operat", "command", "alert", "metric", "monitor", "dead letter", "replay", "health", "runbook"),
        "Every metric, its labels and meaning: [the metrics catalog](../deploy/metrics.md) (generated).",
    ),
    Page(
        "tenants-security.md",
        "Tenants and security",
        "going to production with tenants, secrets and rate limits; the security model",
        ("Going to production: tenants", "Security model"),
        ("tenant", "secur", "secret", "auth", "password", "tls", "privacy"),
    ),
    Page(
        "analysts.md",
        "Analysts: tables, queries and the cookbook",
        "what lands in ClickHouse, `ringback sql`, saved views, and the analyst cookbook",
        (
            "What lands in ClickHouse",
            "Analyst queries",
            "Saved views",
            "BI tools and analyst accounts",
            "Analyst cookbook",
        ),
        ("analyst", "query", "queries", "sql", "view", "cookbook", "bi ", "grafana", "clickhouse", "account"),
    ),
    Page(
        "speed.md",
        "Speed",
        "`make bench`, `make soak` and `make bench-queries`: the reference runs and their numbers",
        ("Speed: `make bench`", "Soak: `make soak`", "The cookbook at scale: `make bench-queries`"),
        ("speed", "bench", "soak", "latency", "throughput", "memory"),
    ),
    Page(
        "scaling.md",
        "Outgrowing one machine",
        "how far each stage goes per core, scaling out, Kafka and ClickHouse clusters",
        ("Outgrowing one machine",),
        ("scal", "cluster", "outgrow", "shard", "replica", "kubernetes"),
    ),
    Page(
        "configuration.md",
        "Configuration",
        "every setting: flag, environment variable, TOML key and default (generated)",
        ("Configuration",),
        ("config", "setting"),
    ),
    Page(
        "upgrading.md",
        "Upgrading",
        "schema evolution, the store's upgrades in place, changed event ids",
        ("Upgrading",),
        ("upgrad", "migrat", "version"),
    ),
    Page(
        "development.md",
        "Development",
        "the layout of the code, and adding a vendor format",
        ("Layout", "Adding a vendor format"),
        ("layout", "develop", "adding", "test", "contribut", "code"),
    ),
]
#: Headings the front door keeps (the opening before the first `##` always stays).
FRONT_HEADINGS = ("Two commands", "Send a callback and see it")
#: Pages generated whole (`make docs`; paths from the repository's root), listed after the split pages.
GENERATED = [
    ("docs/event-fields.md", "Event fields", "every field of the Avro event: type, default, meaning (generated)"),
    ("deploy/metrics.md", "Metrics catalog", "every metric ringback exports (generated)"),
]
FALLBACK_PAGE = "operations.md"
#: Words that pointed to another section of the one manual and now need the page it is on, by page.
REWRITES = {
    "vendors.md": [
        (
            "status from `failure_code` (table above)",
            (
                "status from `failure_code` (the table in "
                "[Status vocabulary](event.md#status-vocabulary-and-the-mapping-of-every-vendor-code))"
            ),
        ),
    ],
    "tenants-security.md": [
        ("(see Bounded everything)", "(see **Bounded everything** in [Delivery guarantees](guarantees.md))"),
    ],
}

HEADING = re.compile(r"^(#{1,6}) +(.*?) *#*$")
FENCE = re.compile(r"^ *(```|~~~)")
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")


@dataclass
class Section:
    level: int
    heading: str
    lines: list[str] = field(default_factory=list)  # the heading line first


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def sections(text: str) -> tuple[list[str], list[Section]]:
    """The opening (title and what precedes the first `##`) and the `##`/`###` sections, in order."""
    opening: list[str] = []
    found: list[Section] = []
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        match = None if fenced else HEADING.match(line)
        if match and len(match.group(1)) in (2, 3):
            found.append(Section(len(match.group(1)), match.group(2), [line]))
        elif found:
            found[-1].lines.append(line)
        else:
            opening.append(line)
    return opening, found


def guess(heading: str) -> str | None:
    words = " " + re.sub(r"[^\w\- ]", " ", heading.lower()) + " "
    for page in PAGES:
        if any(re.search(r"[ \-]" + re.escape(w), words) for w in page.words):
            return page.file
    return None


def assign(found: list[Section]) -> tuple[list[str], list[str]]:
    """The page of each section (FRONT for the front door), and the warnings for unmapped headings."""
    by_heading = {h: page.file for page in PAGES for h in page.headings}
    by_heading |= dict.fromkeys(FRONT_HEADINGS, FRONT)
    pages: list[str] = []
    warnings: list[str] = []
    parent = previous = FRONT
    for section in found:
        page = by_heading.get(section.heading)
        if page is None:
            inherited = parent if section.level == 3 else previous
            page = guess(section.heading) or (inherited if inherited != FRONT else FALLBACK_PAGE)
            warnings.append(f"unmapped heading {'#' * section.level} {section.heading!r} -> docs/{page}")
        if section.level == 2:
            parent = page
        pages.append(page)
        previous = page
    return pages, warnings


def relative(target_page: str, from_page: str) -> str:
    """The path of target_page (FRONT or a docs file) as seen from from_page."""
    if target_page == from_page:
        return ""
    if from_page == FRONT:
        return f"{DOCS}/{target_page}"
    return "../README.md" if target_page == FRONT else target_page


def mentions(found: list[Section], pages: list[str]) -> list[tuple[re.Pattern[str], str, str]]:
    """For each heading: a pattern of the prose that names it ("see Event ids", "as Outgrowing one machine
    describes", "listed under Analyst queries", "see Speed" for "Speed: `make bench`"), its anchor and page."""
    found_mentions = []
    for section, page in zip(found, pages, strict=True):
        names = {section.heading, section.heading.split(":", 1)[0]}
        for name in sorted(names, key=len, reverse=True):
            if "`" in name or "(" in name:
                continue
            words = r"\s+".join(re.escape(w) for w in name.split())
            verbs = r"see|as|under" if " " in name else r"see"
            pattern = re.compile(rf"\b({verbs})(\s+)({words})(?:\s+(?:below|above))?(?=[\s;,.)])")
            found_mentions.append((pattern, slug(section.heading), page))
    return found_mentions


def link_mentions(text: str, page: str, named: list[tuple[re.Pattern[str], str, str]]) -> str:
    """A heading named in prose that now sits on another page becomes a link to it."""
    for pattern, anchor, holder in named:
        if holder != page:
            text = pattern.sub(rf"\1\2[\3](#{anchor})", text)
    return text


@dataclass(frozen=True)
class Places:
    """Where each heading went: page by anchor, and the prose patterns that name a heading."""

    anchors: dict[str, str]
    named: list[tuple[re.Pattern[str], str, str]]


def fix_links(lines: list[str], page: str, places: Places) -> list[str]:
    """Anchors point at the page now holding their heading; file paths are made relative to docs/; a heading
    named in prose on another page is linked."""

    def fix(match: re.Match[str]) -> str:
        target = match.group(2)
        if re.match(r"^[a-z]+:", target) or target.startswith("/"):
            return match.group(0)
        if target.startswith("#"):
            holder = places.anchors.get(target[1:])
            if holder is None:
                print(f"warning: link to unknown anchor {target} on {page}", file=sys.stderr)
                return match.group(0)
            return match.group(1) + relative(holder, page) + target + match.group(3)
        if page != FRONT:
            target = "../" + target
        return match.group(1) + target + match.group(3)

    out: list[str] = []
    prose: list[str] = []  # link text may wrap onto the next line: rewrite whole runs of prose
    fenced = False
    for line in lines:
        if FENCE.match(line):
            if not fenced:
                out += LINK.sub(fix, link_mentions("\n".join(prose), page, places.named)).split("\n") if prose else []
                prose = []
            fenced = not fenced
            out.append(line)
        elif fenced:
            out.append(line)
        else:
            prose.append(line)
    out += LINK.sub(fix, link_mentions("\n".join(prose), page, places.named)).split("\n") if prose else []
    return out


def tidy(lines: list[str]) -> list[str]:
    """No blank lines at either end, and one newline at the end of the page."""
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def front_door(opening: list[str], front: list[Section], places: Places, written: list[Page]) -> str:
    body = list(opening)
    for section in front:
        body += section.lines
    body = fix_links(tidy(body), FRONT, places)
    table = ["", "## Where to read next", "", "| page | what it holds |", "|---|---|"]
    table += [f"| [{p.title}]({DOCS}/{p.file}) | {p.what} |" for p in written]
    table += [f"| [{title}]({path}) | {what} |" for path, title, what in GENERATED]
    return "\n".join(body + table) + "\n"


def doc_page(page: Page, held: list[Section], places: Places) -> str:
    head = [f"# {page.title}", ""] + ([page.intro, ""] if page.intro else [])  # links already as from docs/
    body: list[str] = []
    for section in held:
        lines = section.lines
        if section is held[0] and section.heading == page.title:  # the page's title is that heading
            lines = lines[1:]
        body += [*tidy(lines), ""]
    text = "\n".join(head + fix_links(tidy(body), page.file, places)) + "\n"
    for old, new in REWRITES.get(page.file, ()):
        if old not in text:
            print(f"warning: docs/{page.file} no longer says {old!r}; its rewrite is not needed", file=sys.stderr)
        text = text.replace(old, new)
    return text


def split(text: str) -> tuple[str, dict[str, str], list[str]]:
    """The front door, the docs pages by file name, and the warnings."""
    opening, found = sections(text)
    if not any(s.heading == "Two commands" for s in found) or len(found) < len(FRONT_HEADINGS) + len(PAGES):
        raise SystemExit("this README looks already split: give the whole manual (see the module's docstring)")
    pages, warnings = assign(found)
    parent_page = FRONT
    for section, page in zip(found, pages, strict=True):
        if section.level == 2:
            parent_page = page
        elif parent_page != page:  # its `##` is on another page: it heads a part of this one
            section.level, section.lines[0] = 2, section.lines[0][1:]
    places = Places({slug(s.heading): p for s, p in zip(found, pages, strict=True)}, mentions(found, pages))
    front = [s for s, p in zip(found, pages, strict=True) if p == FRONT]
    written = [page for page in PAGES if page.file in pages]
    docs = {
        page.file: doc_page(page, [s for s, p in zip(found, pages, strict=True) if p == page.file], places)
        for page in written
    }
    readme = front_door(opening, front, places, written)
    lines = readme.count("\n")
    if lines > MAX_FRONT_LINES:
        warnings.append(f"the front door has {lines} lines, more than {MAX_FRONT_LINES}")
    return readme, docs, warnings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("full_readme", nargs="?", default=str(REPO_ROOT / FRONT))
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a heading is unmapped")
    args = parser.parse_args()
    readme, docs, warnings = split(Path(args.full_readme).read_text(encoding="utf-8"))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.check:
        return 1 if warnings else 0
    docs_dir = REPO_ROOT / DOCS
    docs_dir.mkdir(exist_ok=True)
    for page in PAGES:  # a page no section maps to any more must not linger
        if page.file not in docs:
            (docs_dir / page.file).unlink(missing_ok=True)
    for name, text in docs.items():
        (docs_dir / name).write_text(text, encoding="utf-8")
    (REPO_ROOT / FRONT).write_text(readme, encoding="utf-8")
    sizes = ", ".join(f"{name} {text.count(chr(10))}" for name, text in docs.items())
    print(f"README.md {readme.count(chr(10))} lines; docs/: {sizes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
