"""ClickHouse through clickhouse-connect: the embedded chdb store or a server, same client code.

Analysts' queries use a reader client of their own (:func:`connect_reader`): its session is bounded by
the query limits and ``readonly=1``, and :func:`run_read_only` runs a query on it only once the query
guard (:mod:`ringback.runtime.query_guard`) allows it."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver import options as clickhouse_options
from clickhouse_connect.driver.client import Client

from ringback.config import DEFAULT_BILLING_TIMEZONE, Settings, checked_zone
from ringback.runtime import cluster_ddl, query_guard, upgrades

DDL_DIR = "clickhouse"
CHDB_SCHEME = "chdb://"
#: Where the DDL names the billing time zone (a quoted SQL string once filled in).
BILLING_TIMEZONE_PLACEHOLDER = "{billing_timezone}"
#: The data directory and the embedded store: their owner's alone.
PRIVATE_DIR_MODE = 0o700
#: ``readonly=1``: reads only, and no setting can change any more, not even in a query's SETTINGS.
READONLY_QUERIES = 1
#: The nice value of the engine threads running an analyst query in the sink's process; ClickHouse
#: applies it only where it may set thread priorities (CAP_SYS_NICE) and ignores it elsewhere.
ANALYST_THREAD_NICENESS = 10
#: A server's HTTP reply may take this much longer than the query's own time limit.
HTTP_REPLY_MARGIN_S = 30


def redacted(dsn: str) -> str:
    """The DSN without its password, for logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", dsn)


def connect(dsn: str) -> Client:
    if dsn.startswith(CHDB_SCHEME):
        Path(dsn.removeprefix(CHDB_SCHEME)).mkdir(parents=True, exist_ok=True)
    client = clickhouse_connect.get_client(dsn=dsn)
    # The driver imports pandas on its first insert (about half a second): done here, not on the first batch.
    _ = clickhouse_options.pd
    return client


def sql_statements(directory: Path) -> list[str]:
    """The statements of ``directory/*.sql``, files in name order, as written (placeholders kept), without
    comment lines."""
    statements = []
    for path in sorted(directory.glob("*.sql")):
        text = "\n".join(
            line for line in path.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("--")
        )
        statements += [statement.strip() for statement in text.split(";") if statement.strip()]
    return statements


def ddl_statements(
    schemas_dir: str | Path, cluster: str = "", billing_timezone: str = DEFAULT_BILLING_TIMEZONE
) -> list[str]:
    """The statements of ``schemas/clickhouse/*.sql`` in order: for one server, or, with a cluster name,
    turned into replicated local tables and distributed tables over them (:mod:`.cluster_ddl`). The
    views' days and hours are in ``billing_timezone`` (checked, then quoted where the DDL says
    ``{billing_timezone}``)."""
    zone_literal = f"'{checked_zone(billing_timezone)}'"
    statements = [
        statement.replace(BILLING_TIMEZONE_PLACEHOLDER, zone_literal)
        for statement in sql_statements(Path(schemas_dir) / DDL_DIR)
    ]
    if cluster:
        return cluster_ddl.cluster_statements(statements, cluster)
    return [statement.replace(cluster_ddl.PLACEHOLDER, "") for statement in statements]


def apply_ddl(
    client: Client, schemas_dir: str | Path, cluster: str = "", billing_timezone: str = DEFAULT_BILLING_TIMEZONE
) -> int:
    """Apply the DDL (idempotent). On one server, with the upgrades of older stores that DDL alone cannot
    do; on a cluster, only over a cluster's own layout: any other store is refused before anything runs
    (:func:`.cluster_ddl.refuse_single_server_tables`), not upgraded."""
    statements = ddl_statements(schemas_dir, cluster, billing_timezone)
    if cluster:
        cluster_ddl.refuse_single_server_tables(statements, lambda sql: client.query(sql).result_rows)
    else:
        upgrades.before_ddl(client)
    for statement in statements:
        client.command(statement)
    if cluster:
        upgrades.move_event_keys(client, cluster)
    else:
        upgrades.after_ddl(client)
    return len(statements)


def make_private(directory: Path) -> None:
    """Create ``directory`` if needed and make it accessible to its owner only."""
    directory.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(directory, PRIVATE_DIR_MODE)


def make_store_private(data_dir: Path, store: Path | None) -> None:
    """The data directory, and the embedded store wherever it is, accessible to their owner only."""
    make_private(data_dir)
    if store is not None:
        make_private(store)


def embedded_store(dsn: str) -> Path | None:
    return Path(dsn.removeprefix(CHDB_SCHEME)) if dsn.startswith(CHDB_SCHEME) else None


@dataclass(frozen=True)
class QueryLimits:
    """What one analyst query may take from the engine."""

    timeout_s: float
    max_memory_bytes: int
    max_result_rows: int
    max_result_bytes: int
    max_threads: int

    @classmethod
    def of(cls, settings: Settings) -> QueryLimits:
        return cls(
            timeout_s=settings.query_timeout_s,
            max_memory_bytes=settings.query_max_memory_bytes,
            max_result_rows=settings.query_max_result_rows,
            max_result_bytes=settings.query_max_result_bytes,
            max_threads=settings.query_max_threads,
        )


def reader_settings(limits: QueryLimits, embedded: bool, output: dict[str, str] | None = None) -> dict[str, Any]:
    """The reader's session settings, in the order they must be applied: the embedded engine applies
    them one by one with SET, and once ``readonly`` is 1 it refuses to change anything else, so it
    comes last. (A server's HTTP interface takes them as URL parameters with every query.) ``output``:
    output settings the query guard allowed (:data:`.query_guard.OUTPUT_SETTINGS`), applied first."""
    profile: dict[str, Any] = {
        **(output or {}),
        "max_execution_time": limits.timeout_s,
        "timeout_overflow_mode": "throw",
        "max_memory_usage": limits.max_memory_bytes,
        "max_result_rows": limits.max_result_rows,
        "max_result_bytes": limits.max_result_bytes,
        "result_overflow_mode": "throw",
        "max_threads": limits.max_threads,
        "allow_introspection_functions": 0,
    }
    if embedded:
        profile["os_thread_priority"] = ANALYST_THREAD_NICENESS
    profile["readonly"] = READONLY_QUERIES
    return profile


def connect_reader(dsn: str, limits: QueryLimits, output: dict[str, str] | None = None) -> Client:
    """A client of its own for analysts' queries, read-only and bounded for its whole session."""
    embedded = dsn.startswith(CHDB_SCHEME)
    extra: dict[str, Any] = {} if embedded else {"send_receive_timeout": int(limits.timeout_s) + HTTP_REPLY_MARGIN_S}
    return clickhouse_connect.get_client(dsn=dsn, settings=reader_settings(limits, embedded, output), **extra)


#: Opens a reader like the one a query was checked on, with these output settings in its session.
ReaderOpener = Callable[[dict[str, str]], Client]


def reader_opener(dsn: str, limits: QueryLimits) -> ReaderOpener:
    return lambda output: connect_reader(dsn, limits, output)


def run_read_only(
    client: Client,
    query: str,
    default_format: str,
    settings: dict[str, str] | None = None,
    open_reader: ReaderOpener | None = None,
) -> bytes:
    """Run an analyst's query on a reader client (:func:`connect_reader`) once the guard allows it;
    a FORMAT clause in the query wins over ``default_format``. Output settings (the query's own
    SETTINGS over ``settings``) need a reader of their own (``open_reader``), opened with them for this
    query: ``readonly=1`` refuses them on ``client``."""
    checked = query_guard.check(query, lambda sql, fmt: client.raw_query(sql, fmt=fmt), settings)
    output_format = checked.output_format or query_guard.checked_format(default_format)
    if not checked.settings:
        return client.raw_query(checked.text, fmt=output_format)
    if open_reader is None:
        raise query_guard.QueryRefused("output settings are not available on this path")
    reader = open_reader(checked.settings)
    try:
        return reader.raw_query(checked.text, fmt=output_format)
    finally:
        reader.close()
