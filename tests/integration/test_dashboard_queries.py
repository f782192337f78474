"""The dashboard's ClickHouse queries run on the real engine (chDB, in a subprocess) against the tables
the DDL creates, with the plugin's macros expanded the way the plugin does: every column they name
exists, and the delivery rate, billing and dead-letter panels show what was stored."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ringback.runtime import clickhouse
from ringback.sink.store import EVENTS_TABLE
from tests.integration.test_cluster_ddl_engine import EVENT_COLUMNS, SCHEMAS, STORE, inserts, run_python
from tests.unit.test_dashboards import CLICKHOUSE_PLUGIN, targets

pytestmark = pytest.mark.integration
#: The dashboard's time range for the test: it holds every test row.
FROM_S, TO_S = 1_700_000_000, 1_900_000_000
INTERVAL_S = 3600


def expanded(raw_sql: str) -> str:
    """The macros of the ClickHouse plugin, as it expands them for a time range and an interval."""
    text = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime({FROM_S}) AND \1 <= toDateTime({TO_S})", raw_sql)
    text = re.sub(r"\$__timeInterval\((\w+)\)", rf"toStartOfInterval(\1, INTERVAL {INTERVAL_S} second)", text)
    assert "$" not in text, f"a macro this test does not expand: {raw_sql}"
    return text + "\nFORMAT JSONEachRow"


def test_the_dashboard_s_clickhouse_queries_run_on_the_tables(tmp_path: Path) -> None:
    found = targets(CLICKHOUSE_PLUGIN)
    queries = {p["title"]: expanded(t["rawSql"]) for p, t in found}
    today = (
        f"INSERT INTO {EVENTS_TABLE} ({EVENT_COLUMNS}) VALUES ('e9', 'call.cdr', 'cdr_push', 'cdr-push', 'i9', 0, "
        "now64(6), now64(6), "
        "'1400', 's9', 'r9', 'answered', 0.7, 'CNY', 2, 90, 'acme', 't')"
    )
    plan = {
        "ddl": clickhouse.ddl_statements(SCHEMAS),
        "inserts": [*inserts(), today],
        "flush": [],
        "queries": queries,
        "params": {},
    }
    result = run_python(STORE, [str(tmp_path / "store"), ""], json.dumps(plan))
    assert isinstance(result, dict)
    answers = result["answers"]
    assert answers["SMS delivery rate"] == [{"time": "2026-11-21 02:00:00", "tenant": "beta", "delivered": 1}]
    assert [(r["failure_type"], r["requests"]) for r in answers["Dead letters stored"]] == [("invalid_json", 1)]
    assert [(r["route"], r["failure_type"]) for r in answers["Latest dead letters"]] == [("cdr-push", "invalid_json")]
    assert answers["Billing today (billing time zone), per tenant"] == [
        {
            "tenant": "acme",
            "app_id": "1400",
            "events": 1,
            "charge": 0.7,
            "currency": "CNY",
            "billable_minutes": 2,
            "duration_s": 90,
        }
    ]
