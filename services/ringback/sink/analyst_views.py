"""Analysts' saved views: a folder of ``.sql`` files, each one query, created as views in the ``analyst``
database when the sink starts (``analyst_views_dir``).

The files are input like any other: each is a regular file of the folder itself with one name (no
symbolic link is followed, no hard link to a file elsewhere is read), bounded (size, count, name), and
its query passes the same guard as ``ringback sql`` (:mod:`ringback.runtime.query_guard`) — one SELECT,
no files, no other hosts, no SETTINGS, no FORMAT — before a view is made of it. What a file holds is
never written to the log: a refusal says the file's name and why. A file that does not start like a
SELECT never reaches the engine, and one the engine's parser cannot read is told by
``formatQueryOrNull``, so the parser's message, which quotes it, never reaches ringback. The guard's
canonical text is what the view holds, so a saved view can do nothing a query typed into ``ringback
sql`` could not. Views live in their own database, so a file can neither replace nor shadow a table or
view of ``ringback``, and the folder is the truth: a view whose file is gone, or no longer passes, is
dropped. A refused file stops nothing: it is logged with its name and reason and counted
(``ringback_analyst_views{state="refused"}``).
"""

from __future__ import annotations

import errno
import os
import re
import stat
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
#: Opening a view file: never through a symbolic link, never waiting on a FIFO.
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
#: Leading blanks and SQL comments, then what a SELECT starts with.
_LEADING_COMMENTS = re.compile(r"(?:\s+|--[^\n]*|#[^\n]*|/\*.*?\*/)*", re.DOTALL)
_SELECT_START = re.compile(r"(?:\(\s*)*(?:SELECT|WITH)\b", re.IGNORECASE)
#: How much of an engine's refusal of a view is logged.
MAX_REASON_CHARS = 300
#: The engine's echo of the statement in an error: ``In scope SELECT ...`` up to the error's name.
_ENGINE_ECHO = re.compile(r":?\s*[Ii]n scope .*?(?=\. \([A-Z_]+\)|$)", re.DOTALL)
_ENGINE_VERSION = re.compile(r"\s*\(version [^)]*\)")

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
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        names = sorted(entry.name for entry in os.scandir(folder_fd) if entry.name.endswith(SUFFIX))
        for index, name in enumerate(names):
            path = folder / name
            if index >= MAX_VIEWS:
                refused.append(Refusal(path, f"more than {MAX_VIEWS} view files in {folder}"))
                continue
            try:
                files.append(ViewFile(name.removesuffix(SUFFIX), path, _read_view_file(folder_fd, name)))
            except FileRefused as exc:
                refused.append(Refusal(path, str(exc)))
    finally:
        os.close(folder_fd)
    return files, refused


class FileRefused(ValueError):
    """Why a view file is not read; never what it holds."""


def _read_view_file(folder_fd: int, name: str) -> str:
    """The query a file of the folder holds, or why it is refused (never what it holds)."""
    stem = name.removesuffix(SUFFIX)
    if not VIEW_NAME.fullmatch(stem):
        raise FileRefused(f"the name must be lower-case letters, digits and _ (at most 63, a letter first): {stem!r}")
    try:
        fd = os.open(name, OPEN_FLAGS, dir_fd=folder_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileRefused("a symbolic link: view files are read from the folder itself, never followed") from None
        raise FileRefused(f"cannot open: {os.strerror(exc.errno or 0)}") from None
    try:
        return _read_open_file(fd)
    finally:
        os.close(fd)


def _read_open_file(fd: int) -> str:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused("not a regular file")
    if info.st_nlink != 1:
        raise FileRefused(f"{info.st_nlink} names (hard links): a view file has one name, in this folder")
    if info.st_size > MAX_FILE_BYTES:
        raise FileRefused(f"{info.st_size} bytes, more than {MAX_FILE_BYTES}")
    data = _read_at_most(fd, MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise FileRefused(f"more than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileRefused("not UTF-8 text") from None
    query = text.strip().rstrip(";").strip()
    if not query:
        raise FileRefused("empty")
    comments = _LEADING_COMMENTS.match(query)
    if not _SELECT_START.match(query, comments.end() if comments else 0):
        raise FileRefused("does not start with SELECT or WITH (after comments)")
    return query


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit and (chunk := os.read(fd, limit - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def checked_select(view: ViewFile, engine: query_guard.Engine) -> str:
    """The guard's canonical text of the file's query, if it is one SELECT without FORMAT."""
    checked = query_guard.check(view.query, engine, parse_errors=False)
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
            result.refused.append(Refusal(view.path, str(exc)[:MAX_REASON_CHARS]))
    errors: dict[str, str] = {}
    while pending:
        progressed = False
        for name, (_view, text) in list(pending.items()):
            try:
                client.command(f"CREATE OR REPLACE VIEW {DATABASE}.`{name}`{on_cluster} AS {text}")
            except Exception as exc:  # the engine's own verdict: unknown table or column, type errors
                errors[name] = engine_reason(str(exc))
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


def engine_reason(message: str) -> str:
    """The engine's refusal of a view, without its echo of the statement: the error's name and what
    it is about (an unknown table or column, a type)."""
    lines = message.strip().splitlines()
    if not lines:
        return "the engine refused it"
    reason = _ENGINE_VERSION.sub("", _ENGINE_ECHO.sub("", lines[0]))
    return f"the engine refused it: {reason}"[:MAX_REASON_CHARS]


def report(folder: Path, result: Applied) -> None:
    """Say what was applied: one line per refused file (an error), one summary line, the gauges."""
    for refusal in result.refused:
        log.error("analyst view refused", file=str(refusal.path), reason=refusal.reason)
    metrics.ANALYST_VIEWS.labels("applied").set(len(result.created))
    metrics.ANALYST_VIEWS.labels("refused").set(len(result.refused))
    log.info(
        "analyst views", folder=str(folder), created=result.created, refused=len(result.refused), dropped=result.dropped
    )
