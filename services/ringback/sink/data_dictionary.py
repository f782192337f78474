"""The data dictionary in the database: every table, view and column of ``ringback`` carries a COMMENT,
shown by ``DESCRIBE`` and ``system.columns``.

One source: a column named like a field of the event schema (``normalized_event.avsc``) takes that
field's doc; ``schemas/comments.toml`` gives every table and view, and every other column, its meaning
(and a table's own meaning of a column where it differs). The sink applies them with ``ALTER TABLE ...
COMMENT COLUMN`` and ``MODIFY COMMENT`` after the DDL at every start (a view the DDL replaces loses
its comments), so the DDL files need none.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ringback.runtime.query_guard import string_literal

DATABASE = "ringback"
COMMENTS_FILE = "comments.toml"
EVENT_SCHEMA = "normalized_event.avsc"

#: Runs a statement on the store; returns its rows for a query.
Run = Callable[[str], list[tuple[object, ...]]]


@dataclass(frozen=True)
class Dictionary:
    tables: dict[str, str]
    columns: dict[str, str]
    table_columns: dict[str, dict[str, str]]

    def table(self, name: str) -> str | None:
        return self.tables.get(name)

    def column(self, table: str, name: str) -> str | None:
        return self.table_columns.get(table, {}).get(name) or self.columns.get(name)


def load(schemas_dir: str | Path) -> Dictionary:
    folder = Path(schemas_dir)
    data = tomllib.loads((folder / COMMENTS_FILE).read_text(encoding="utf-8"))
    schema = json.loads((folder / EVENT_SCHEMA).read_text(encoding="utf-8"))
    event_docs = {field["name"]: field["doc"] for field in schema["fields"] if field.get("doc")}
    return Dictionary(
        tables=dict(data.get("tables", {})),
        columns={**event_docs, **data.get("columns", {})},
        table_columns={table: dict(columns) for table, columns in data.get("table_columns", {}).items()},
    )


def _quoted(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


@dataclass(frozen=True)
class Applied:
    comments: int
    missing: list[str]


def apply(run: Run, dictionary: Dictionary) -> Applied:
    """Comment every table and column of ``ringback`` the dictionary knows; the names it does not know."""
    applied, missing = 0, []
    tables = [str(row[0]) for row in run(f"SELECT name FROM system.tables WHERE database = '{DATABASE}' ORDER BY name")]
    for table in tables:
        target = f"{DATABASE}.{_quoted(table)}"
        comment = dictionary.table(table)
        if comment is None:
            missing.append(table)
        else:
            run(f"ALTER TABLE {target} MODIFY COMMENT {string_literal(comment)}")
            applied += 1
        columns = [
            str(row[0])
            for row in run(
                f"SELECT name FROM system.columns WHERE database = '{DATABASE}' AND table = {string_literal(table)} "
                "ORDER BY position"
            )
        ]
        clauses = []
        for column in columns:
            text = dictionary.column(table, column)
            if text is None:
                missing.append(f"{table}.{column}")
                continue
            clauses.append(f"COMMENT COLUMN {_quoted(column)} {string_literal(text)}")
        if clauses:
            run(f"ALTER TABLE {target} {', '.join(clauses)}")
            applied += len(clauses)
    return Applied(applied, missing)
