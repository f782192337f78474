"""The rows a tenant-limited analyst sees: only their tenants', in every table and view of the store.

The engine enforces it: the query runs on a reader whose session carries ``additional_table_filters``
(set before ``readonly=1``, so the query cannot change it) with, for every table of every database
that is not a system one, ``tenant IN (...)`` where the table has a ``tenant`` column and ``0`` (no row)
where it has none. The engine applies those filters wherever the table is read: directly, in a join,
a subquery, a CTE, a set operation, the ``view()`` table function and inside every view, which run
with the analyst's own session (``SQL SECURITY INVOKER``, the default for views). Views that have a
``tenant`` column are filtered on it too.

What the filters cannot cover, the guard refuses for these analysts: ``EXPLAIN`` (its estimates count
every tenant's rows), and the system tables' sizes and row counts (``system.tables.total_rows``,
``information_schema.tables.table_rows``, ...); their ``*`` with them.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from clickhouse_connect.driver.client import Client

from ringback.runtime import clickhouse, query_guard
from ringback.runtime.query_guard import Engine, Node, QueryRefused

TENANT_COLUMN = "tenant"
FILTERS_SETTING = "additional_table_filters"
#: A plain view holds no rows: they come from the tables it reads, filtered there. (A materialized view
#: is read as its target table, without the target's filter: it gets one of its own.)
VIEW_ENGINES = frozenset({"View"})
#: Columns of the system tables an analyst may read that count or size every tenant's rows together.
SIZE_COLUMNS = frozenset(
    {
        "total_rows",
        "total_bytes",
        "total_bytes_uncompressed",
        "lifetime_rows",
        "lifetime_bytes",
        "parts",
        "active_parts",
        "total_marks",
        "data_compressed_bytes",
        "data_uncompressed_bytes",
        "marks_bytes",
        "table_rows",
        "data_length",
        "index_length",
        "avg_row_length",
        "data_free",
        "max_data_length",
        "checksum",
    }
)


def tenant_filter(tenants: Iterable[str]) -> str:
    listed = ", ".join(query_guard.string_literal(tenant) for tenant in sorted(tenants))
    return f"{TENANT_COLUMN} IN ({listed})"


def table_filters(engine: Engine, tenants: frozenset[str]) -> str:
    """The ``additional_table_filters`` map (a ClickHouse literal) for every table and materialized view
    of the store."""
    user_databases = "database NOT IN ('system', 'information_schema', 'INFORMATION_SCHEMA')"
    with_tenant = {
        (row["database"], row["table"])
        for row in _rows(
            engine(
                f"SELECT database, table FROM system.columns WHERE {user_databases} AND name = '{TENANT_COLUMN}'",
                "JSONEachRow",
            )
        )
    }
    tables = _rows(engine(f"SELECT database, name, engine FROM system.tables WHERE {user_databases}", "JSONEachRow"))
    only_theirs = tenant_filter(tenants)
    entries = []
    for row in tables:
        if (row["database"], row["name"]) in with_tenant:
            condition = only_theirs
        elif row["engine"] in VIEW_ENGINES:
            continue
        else:
            condition = "0"
        key = f"{row['database']}.{row['name']}"
        entries.append(f"{query_guard.string_literal(key)}: {query_guard.string_literal(condition)}")
    return "{" + ", ".join(entries) + "}"


def _rows(output: bytes) -> list[dict[str, str]]:
    return [orjson.loads(line) for line in output.splitlines() if line.strip()]


def check_for_tenants(text: str, engine: Engine) -> None:
    """What the row filters cannot hide from a tenant-limited analyst, refused (``text``: the
    canonical text the guard allowed)."""
    tree = query_guard.parse_tree(engine(f"EXPLAIN AST {text}", None).decode("utf-8", "replace"))
    if tree.kind == "Explain":
        raise QueryRefused("EXPLAIN is not available to a tenant-limited account (its estimates count every tenant)")
    nodes = _walk(tree)
    reads_system = any(
        node.kind in ("TableIdentifier", "Identifier")
        and node.name.lower().split(".", 1)[0] in query_guard.SYSTEM_DATABASES
        and "." in node.name
        for node in nodes
    )
    if not reads_system:
        return
    for node in nodes:
        if "Asterisk" in node.kind or "Matcher" in node.kind:
            raise QueryRefused(
                "* or COLUMNS() with a system table: name its columns (a tenant-limited account does not see "
                "row counts or sizes)"
            )
        if node.kind == "Identifier" and node.name.lower().rsplit(".", 1)[-1] in SIZE_COLUMNS:
            raise QueryRefused(
                f"column {node.name} of a system table: row counts and sizes cover every tenant, "
                "not shown to a tenant-limited account"
            )


def _walk(node: Node) -> list[Node]:
    found = [node]
    for child in node.children:
        found.extend(_walk(child))
    return found


def run_for_tenants(
    client: Client,
    query: str,
    default_format: str,
    tenants: frozenset[str],
    settings: dict[str, str],
    open_reader: clickhouse.ReaderOpener,
) -> bytes:
    """:func:`ringback.runtime.clickhouse.run_read_only` for an analyst limited to ``tenants``: the
    query runs on a reader opened for it, its session filtered to those tenants' rows."""

    def engine(sql: str, fmt: str | None) -> bytes:
        return client.raw_query(sql, fmt=fmt)

    checked = query_guard.check(query, engine, settings)
    output_format = checked.output_format or query_guard.checked_format(default_format)
    check_for_tenants(checked.text, engine)
    reader = open_reader({**checked.settings, FILTERS_SETTING: table_filters(engine, tenants)})
    try:
        return reader.raw_query(checked.text, fmt=output_format)
    finally:
        reader.close()
