"""Analysts' saved views: a folder of ``.sql`` files, each one query, created as views in the ``analyst``
database when the sink starts (``analyst_views_dir``).

The files are input like any other: each is bounded (size, count, name), and its query passes the same
guard as ``ringback sql`` (:mod:`ringback.runtime.query_guard`) — one SELECT, no files, no other hosts,
no SETTINGS, no FORMAT — before a view is made of it. The guard's canonical text is what the view holds,
so a saved view can do nothing a query typed into ``ringback sql`` could not. Views live in their own
database, so a file can neither replace nor shadow a table or view of ``ringback``, and the folder is
the truth: a view whose file is gone, or no longer passes, is dropped. A refused file stops nothing;
it is logged with its reason and counted (``ringback_analyst_views{state="refused"}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from clickhouse_connect.driver.client import Client

from ringback import logs, metrics
from ringback.runtime import query_guard

DATABASE = "analyst"
SUFFIX = ".sql"
#: A file's name without ``.sql`` is its view's name.
VIEW_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
MAX_FILE_BYTES = 64 * 1024
MAX_VIEWS = 200
#: Statement kinds a view can hold (the guard also allows SHOW, DESCRIBE, EXISTS and EXPLAIN).
SELECT_WORDS = ("SELECT", "WITH")

log = logs.get(__name__)


@dataclass(frozen=True)
class ViewFile:
    name: str
    path: Path
    query: str


@dataclass(frozen=True)
class Refusal:
    path: Path
    reason: str


@dataclass
class Applied:
    created: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def read_folder(folder: Path) -> tuple[list[ViewFile], list[Refusal]]:
    """The folder's view files in name order, and the files refused before any engine sees them."""
    files: list[ViewFile] = []
    refused: list[Refusal] = []
    paths = sorted(p for p in folder.iterdir() if p.suffix == SUFFIX)
    for index, path in enumerate(paths):
        if index >= MAX_VIEWS:
            refused.append(Refusal(path, f"more than {MAX_VIEWS} view files in {folder}"))
            continue
        reason = _file_refusal(path)
        if reason is not None:
            refused.append(Refusal(path, reason))
            continue
        files.append(ViewFile(path.stem, path, path.read_text(encoding="utf-8").strip().rstrip(";").strip()))
    return files, refused


def _file_refusal(path: Path) -> str | None:
    if not VIEW_NAME.fullmatch(path.stem):
        return f"the name must be lower-case letters, digits and _ (at most 63, a letter first): {path.stem!r}"
    if not path.is_file():
        return "not a regular file"
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        return f"{size} bytes, more than {MAX_FILE_BYTES}"
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        return f"unreadable: {exc}"
    if not text.strip().rstrip(";").strip():
        return "empty"
    return None


def checked_select(view: ViewFile, engine: query_guard.Engine) -> str:
    """The guard's canonical text of the file's query, if it is one SELECT without FORMAT."""
    checked = query_guard.check(view.query, engine)
    if not checked.text.upper().startswith(SELECT_WORDS):
        raise query_guard.QueryRefused(f"a view holds one SELECT, not {checked.text.split(None, 1)[0]}")
    if checked.output_format is not None:
        raise query_guard.QueryRefused("a view has no FORMAT")
    return checked.text


def apply(client: Client, engine: query_guard.Engine, folder: Path, cluster: str = "") -> Applied:
    """Create (or replace) a view per file that passes, drop the ``analyst`` views without one.

    ``client`` may write (it creates the views); ``engine`` is the analysts' read-only reader, on which
    the guard checks each query. Views may read each other: those that fail because another is not there
    yet are tried again once more views exist.
    """
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    client.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}{on_cluster}")
    files, refused = read_folder(folder)
    result = Applied(refused=refused)
    pending: dict[str, tuple[ViewFile, str]] = {}
    for view in files:
        try:
            pending[view.name] = (view, checked_select(view, engine))
        except (query_guard.QueryRefused, query_guard.QueryNotParsed) as exc:
            result.refused.append(Refusal(view.path, str(exc)))
    errors: dict[str, str] = {}
    while pending:
        progressed = False
        for name, (_view, text) in list(pending.items()):
            try:
                client.command(f"CREATE OR REPLACE VIEW {DATABASE}.`{name}`{on_cluster} AS {text}")
            except Exception as exc:  # the engine's own verdict: unknown table or column, type errors
                errors[name] = _first_line(str(exc))
                continue
            result.created.append(name)
            del pending[name]
            progressed = True
        if not progressed:
            break
    result.refused.extend(Refusal(view.path, errors[name]) for name, (view, _) in pending.items())
    kept = set(result.created)
    for name in _existing_views(client):
        if name not in kept:
            client.command(f"DROP VIEW IF EXISTS {DATABASE}.`{name}`{on_cluster}")
            result.dropped.append(name)
    return result


def _existing_views(client: Client) -> list[str]:
    rows = client.query(
        f"SELECT name FROM system.tables WHERE database = '{DATABASE}' AND engine = 'View' ORDER BY name"
    ).result_rows
    return [str(name) for (name,) in rows]


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0][:500] if message.strip() else "failed"


def report(folder: Path, result: Applied) -> None:
    """Say what was applied: one line per refused file (an error), one summary line, the gauges."""
    for refusal in result.refused:
        log.error("analyst view refused", file=str(refusal.path), reason=refusal.reason)
    metrics.ANALYST_VIEWS.labels("applied").set(len(result.created))
    metrics.ANALYST_VIEWS.labels("refused").set(len(result.refused))
    log.info(
        "analyst views", folder=str(folder), created=result.created, refused=len(result.refused), dropped=result.dropped
    )
