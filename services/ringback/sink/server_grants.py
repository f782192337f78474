"""The analysts file as SQL for a ClickHouse server: with a server DSN the analysts use the server itself,
so its users, roles and row policies must say what the analysts file says.

One read-only role may SELECT from ``ringback`` and ``analyst``; each account becomes a user identified by
its password's SHA-256 with that role; every table of ``ringback`` with a ``tenant`` column gets one row
policy per account (a policy for some users hides every row from the others, so every-tenant accounts get
``USING 1``). Views need none: they read those tables, whose policies apply. The tables are found by
applying the DDL to a temporary embedded store, so the list follows the schema.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from ringback.runtime import clickhouse
from ringback.sink.analysts import Analyst

ROLE = "analysts_readonly"
DATABASES = ("ringback", "analyst")


def tenant_tables(schemas_dir: str | Path) -> list[str]:
    """The tables (not views) of ``ringback`` with a ``tenant`` column, as the DDL makes them."""
    with tempfile.TemporaryDirectory(prefix="ringback-grants-") as scratch:
        client = clickhouse.connect(f"{clickhouse.CHDB_SCHEME}{Path(scratch) / 'store'}")
        try:
            clickhouse.apply_ddl(client, schemas_dir)
            rows = client.query(
                "SELECT t.name FROM system.tables AS t "
                "INNER JOIN (SELECT DISTINCT table FROM system.columns WHERE database = 'ringback' "
                "AND name = 'tenant') AS c ON c.table = t.name "
                "WHERE t.database = 'ringback' AND t.engine NOT IN ('View', 'MaterializedView') ORDER BY t.name"
            ).result_rows
        finally:
            client.close()
    return [str(row[0]) for row in rows]


def _policy_name(analyst: Analyst) -> str:
    return f"analyst_{analyst.name}".replace(".", "_").replace("-", "_")


def _condition(analyst: Analyst) -> str:
    if analyst.tenants is None:
        return "1"
    return "tenant IN (" + ", ".join(f"'{tenant}'" for tenant in sorted(analyst.tenants)) + ")"


def grants_sql(analysts: Mapping[str, Analyst], tables: Iterable[str]) -> str:
    """The statements, one per line, idempotent (IF NOT EXISTS / OR REPLACE). Names and tenant ids were
    checked by the analysts file's patterns (letters, digits, '_', '.', '-'), so quoting them is enough."""
    lines = [
        f"CREATE ROLE IF NOT EXISTS {ROLE} SETTINGS readonly = 1;",
        *(f"GRANT SELECT ON {database}.* TO {ROLE};" for database in DATABASES),
    ]
    for analyst in analysts.values():
        lines.append(
            f"CREATE USER OR REPLACE `{analyst.name}` IDENTIFIED WITH sha256_hash BY "
            f"'{analyst.password_sha256.hex()}' DEFAULT ROLE {ROLE};"
        )
        lines.append(f"GRANT {ROLE} TO `{analyst.name}`;")
    for table in tables:
        for analyst in analysts.values():
            lines.append(
                f"CREATE ROW POLICY OR REPLACE {_policy_name(analyst)} ON ringback.{table} "
                f"USING {_condition(analyst)} TO `{analyst.name}`;"
            )
    return "\n".join(lines) + "\n"
