"""`ringback sql`: run an analyst's query against the embedded store (running or not) or a server.

Every path runs it the same way (:func:`ringback.runtime.clickhouse.run_read_only`): the query guard
first, then a reader client whose session is ``readonly=1`` and bounded by the query limits. While a
sink owns the embedded store, that happens inside the sink, behind its loopback query endpoint.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from ringback import config
from ringback.config import Settings
from ringback.runtime import clickhouse, runfiles
from ringback.sink.query_endpoint import RUN_FILE, TOKEN_HEADER

TERMINAL_FORMAT = "PrettyCompact"
PIPE_FORMAT = "TabSeparated"
#: How much longer than the query's time limit to wait for the sink's reply (the guard's own two
#: statements, and a query queued behind another analyst's).
SINK_REPLY_MARGIN_S = 30.0
SINK_RESTART_WAIT_S = 60.0
RETRY_S = 0.5


class QueryError(RuntimeError):
    """The query could not be run; the message says why."""


def run_sql(
    settings: Settings,
    query: str,
    default_format: str,
    timeout_s: float | None = None,
    output_settings: dict[str, str] | None = None,
) -> bytes:
    """``timeout_s`` bounds the whole wait (a running sink's reply, a restarting one's store); by
    default the query's own time limit and the wait for a restarting sink. ``output_settings``: how
    the answer is printed (``--setting``), checked by the query guard like a SETTINGS clause."""
    limits = clickhouse.QueryLimits.of(settings)
    output = output_settings or {}
    if not settings.embedded_clickhouse:
        return _direct(settings.effective_clickhouse_dsn, limits, query, default_format, output)
    store = Path(settings.effective_clickhouse_dsn.removeprefix(clickhouse.CHDB_SCHEME))
    deadline = time.monotonic() + (SINK_RESTART_WAIT_S if timeout_s is None else timeout_s)
    while True:
        running = runfiles.read_live(settings.run_dir, RUN_FILE)
        if running is not None:
            reply_s = limits.timeout_s + SINK_REPLY_MARGIN_S if timeout_s is None else timeout_s
            return through_running_sink(running, query, default_format, reply_s, output)
        if not store.exists():
            raise QueryError(no_store_message(settings, store))
        try:
            _make_private(settings, store)
            return _direct(settings.effective_clickhouse_dsn, limits, query, default_format, output)
        except StoreBusy:
            # A sink owns the store but has no query endpoint up: it is starting or restarting.
            if time.monotonic() > deadline:
                raise QueryError(
                    f"the embedded store at {store} is held by a process that does not answer queries"
                ) from None
            time.sleep(RETRY_S)


def no_store_message(settings: Settings, store: Path) -> str:
    """Where `ringback sql` looked, and how to point it at the store of the `ringback run` meant."""
    return (
        f"no embedded ClickHouse store at {store} (data directory {settings.data_path.resolve()}, from "
        f"--data-dir or {config.env_name('data_dir')}; relative paths are from the current directory): "
        f"give the --data-dir that `ringback run` was started with, or start `ringback run --data-dir "
        f"{settings.data_dir}` first"
    )


class StoreBusy(QueryError):
    """Another process holds the embedded store."""


def _make_private(settings: Settings, store: Path) -> None:
    """Stores created before the data directory was kept private become private when opened."""
    try:
        clickhouse.make_store_private(settings.data_path, store)
    except OSError as exc:
        raise QueryError(f"cannot make the embedded store private to its owner: {exc}") from exc


def _direct(dsn: str, limits: clickhouse.QueryLimits, query: str, default_format: str, output: dict[str, str]) -> bytes:
    try:
        client = clickhouse.connect_reader(dsn, limits)
    except Exception as exc:
        if dsn.startswith(clickhouse.CHDB_SCHEME) and ("Cannot lock file" in str(exc) or "EmbeddedServer" in str(exc)):
            raise StoreBusy(str(exc)) from exc
        raise QueryError(f"cannot open {clickhouse.redacted(dsn)} for queries: {exc}") from exc
    try:
        return clickhouse.run_read_only(client, query, default_format, output, clickhouse.reader_opener(dsn, limits))
    except Exception as exc:
        raise QueryError(str(exc)) from exc
    finally:
        client.close()


def through_running_sink(
    running: dict[str, str], query: str, default_format: str, timeout_s: float, output: dict[str, str]
) -> bytes:
    request = urllib.request.Request(
        running["url"],
        data=json.dumps({"query": query, "format": default_format, "settings": output}).encode(),
        headers={TOKEN_HEADER: running["token"], "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        raise QueryError(exc.read().decode("utf-8", "replace")) from exc
    except urllib.error.URLError as exc:
        raise QueryError(f"the running sink did not answer at {running['url']}: {exc.reason}") from exc
    except OSError as exc:  # a timeout or a reset while the reply was being read (the sink stopped or restarting)
        raise QueryError(f"the running sink did not answer at {running['url']}: {type(exc).__name__}: {exc}") from exc
