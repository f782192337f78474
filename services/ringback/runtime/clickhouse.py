"""ClickHouse through clickhouse-connect: the embedded chdb store or a server, same client code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver import options as clickhouse_options
from clickhouse_connect.driver.client import Client

DDL_DIR = "clickhouse"
#: `readonly=2`: reads and session settings (FORMAT options) only; no writes, no DDL.
READ_ONLY = {"readonly": 2}
_FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+[A-Za-z0-9_]+\s*;?\s*$", re.IGNORECASE)


def redacted(dsn: str) -> str:
    """The DSN without its password, for logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", dsn)


def connect(dsn: str) -> Client:
    if dsn.startswith("chdb://"):
        Path(dsn.removeprefix("chdb://")).mkdir(parents=True, exist_ok=True)
    client = clickhouse_connect.get_client(dsn=dsn)
    # The driver imports pandas on its first insert (about half a second): done here, not on the first batch.
    _ = clickhouse_options.pd
    return client


def ddl_statements(schemas_dir: str | Path, cluster: str = "") -> list[str]:
    on_cluster = f"ON CLUSTER {cluster}" if cluster else ""
    statements = []
    for path in sorted((Path(schemas_dir) / DDL_DIR).glob("*.sql")):
        text = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("--"))
        for statement in text.split(";"):
            if statement.strip():
                statements.append(statement.strip().replace("{on_cluster}", on_cluster))
    return statements


def apply_ddl(client: Client, schemas_dir: str | Path, cluster: str = "") -> int:
    statements = ddl_statements(schemas_dir, cluster)
    for statement in statements:
        client.command(statement)
    return len(statements)


def has_format_clause(query: str) -> bool:
    return bool(_FORMAT_CLAUSE.search(query.strip()))


def run_read_only(client: Client, query: str, default_format: str) -> bytes:
    """Run an analyst's query read-only; a FORMAT clause in it wins over ``default_format``."""
    query = query.strip().rstrip(";")
    fmt = None if has_format_clause(query) else default_format
    settings: dict[str, Any] = dict(READ_ONLY)
    return client.raw_query(query, settings=settings, fmt=fmt)
