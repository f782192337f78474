"""The data dictionary in the database: after the DDL and the dictionary the sink applies at start,
every table, view and column of `ringback` has a comment, shown by DESCRIBE and system.columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringback.runtime import clickhouse
from ringback.sink import data_dictionary
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

SCHEMAS = REPO_ROOT / "schemas"


def test_every_table_view_and_column_of_ringback_has_a_comment(tmp_path: Path) -> None:
    client = clickhouse.connect(f"{clickhouse.CHDB_SCHEME}{tmp_path / 'store'}")
    try:
        clickhouse.apply_ddl(client, SCHEMAS)

        def run(sql: str) -> list[tuple[object, ...]]:
            if sql.startswith("SELECT"):
                return [tuple(row) for row in client.query(sql).result_rows]
            client.command(sql)
            return []

        applied = data_dictionary.apply(run, data_dictionary.load(SCHEMAS))
        assert applied.missing == []
        uncommented = client.query(
            "SELECT table, name FROM system.columns WHERE database = 'ringback' AND comment = ''"
        ).result_rows
        assert uncommented == []
        tables = client.query("SELECT name FROM system.tables WHERE database = 'ringback' AND comment = ''")
        assert tables.result_rows == []
        described = {row[0]: row[4] for row in client.query("DESCRIBE ringback.events").result_rows}
        assert described["charge"] == "Charge as an exact decimal."
        assert described["event_time"].startswith("When it happened")
    finally:
        client.close()
