"""The cluster DDL read and run by the real engine (chDB, in a subprocess: one store per process).

- ClickHouse's own parser reads every generated statement (``formatQuery``).
- The statements one node of a cluster runs are executed on a one-shard cluster whose only replica is
  the engine itself (its ``remote_servers`` and macros from a config file), with the replicated engines
  taken back to their plain form, since replication needs a Keeper that an embedded engine does not
  run: the local tables, the distributed tables over them, the materialized views that read the local
  tables and write through the distributed ones, and the views on top. The same callbacks are stored,
  in the tables the sink inserts into, through the single-server DDL and through the cluster's, and
  the docs' billing queries, `ringback reconcile`'s queries, the sink's conflict query and the
  analysts' views give the same, exact answers in both.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ringback import reconcile
from ringback.runtime import clickhouse, cluster_ddl
from ringback.sink import conflicts
from ringback.sink.store import DEAD_LETTERS_TABLE, EVENTS_TABLE, LEDGER_TABLE
from tests import docs
from tests.conftest import FIXTURES, REPO_ROOT
from tests.unit.test_cluster_ddl import CLUSTER, LISTS

pytestmark = pytest.mark.integration
SCHEMAS = REPO_ROOT / "schemas"
#: Hours of ledger the reconcile queries look at: every test row, whatever today's date.
RECONCILE_HOURS = 100_000

PARSE = r"""
import json, sys
import chdb
from ringback.runtime.query_guard import string_literal
verdicts = []
for statement in json.loads(sys.stdin.read()):
    try:
        out = chdb.query(f"SELECT formatQuery({string_literal(statement)}) AS canonical", "JSONEachRow")
        verdicts.append({"ok": True, "canonical": json.loads(str(out))["canonical"]})
    except Exception as exc:
        verdicts.append({"ok": False, "error": str(exc)[:500]})
print(json.dumps(verdicts))
"""

ONE_SHARD_CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  <macros><shard>01</shard><replica>r1</replica></macros>
  <remote_servers>
    <{cluster}><shard><internal_replication>true</internal_replication>
      <replica><host>localhost</host><port>9000</port></replica>
    </shard></{cluster}>
  </remote_servers>
</clickhouse>
"""

STORE = r"""
import json, sys
import chdb
store, config, plan = sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())
conn = chdb.connect(f"file:{store}" + (f"?config-file={config}" if config else ""))
def rows(sql):
    out = str(conn.query(sql, "JSONEachRow", params=plan["params"]))
    return [json.loads(line) for line in out.splitlines() if line.strip()]
for _ in range(2):  # applied at every start: the second time changes nothing
    for statement in plan["ddl"]:
        conn.query(statement)
for insert in plan["inserts"]:
    conn.query(insert)
for table in plan["flush"]:
    conn.query(f"SYSTEM FLUSH DISTRIBUTED {table}")
print(json.dumps({
    "tables": rows("SELECT name, engine FROM system.tables WHERE database = 'ringback' ORDER BY name"),
    "answers": {name: rows(sql) for name, sql in plan["queries"].items()},
}, default=str))
"""

# Callbacks as the sink stores them: a resent report (same event id) in two inserts whose copies disagree
# on the charge (the first arrival counts), two tenants whose vendor ids coincide, a dead letter stored
# twice (a replay), a ledger delta loaded twice.
EVENT_COLUMNS = (
    "event_id, event_type, source, route, ingest_id, report_index, received_at, occurred_at, app_id, sid, request_id, "
    "status, charge, currency, billable_minutes, duration_s, tenant, normalizer_version"
)
EVENTS = [
    [
        (
            "e1",
            "voice.code_status",
            "tencent.voicecode",
            "tencent/voicecode",
            "i1",
            0,
            "2026-11-20 02:00:00",
            "2026-11-20 01:59:00",
            "1400",
            "s1",
            None,
            "answered",
            "0.05",
            "CNY",
            1,
            30,
            "acme",
            "t",
        )
    ],
    [
        (
            "e1",
            "voice.code_status",
            "tencent.voicecode",
            "tencent/voicecode",
            "i2",
            0,
            "2026-11-20 02:05:00",
            "2026-11-20 01:59:00",
            "1400",
            "s1",
            None,
            "answered",
            "0.07",
            "CNY",
            1,
            30,
            "acme",
            "t",
        ),
        (
            "e2",
            "call.cdr",
            "cdr_push",
            "cdr-push",
            "i3",
            0,
            "2026-11-20 17:00:00",
            "2026-11-20 16:30:00",
            "1400",
            "s2",
            "r2",
            "answered",
            "1.5",
            "CNY",
            3,
            170,
            "acme",
            "t",
        ),
        (
            "e3",
            "call.cdr",
            "cdr_push",
            "cdr-push",
            "i4",
            0,
            "2026-11-20 17:00:00",
            "2026-11-20 16:30:00",
            "1400",
            "s2",
            "r2",
            "answered",
            "2.25",
            "CNY",
            4,
            200,
            "beta",
            "t",
        ),
    ],
    [
        (
            "e4",
            "sms.delivery_report",
            "tencent.sms_status",
            "tencent/sms-status",
            "i5",
            1,
            "2026-11-21 03:00:00",
            "2026-11-21 02:59:59",
            "1400",
            "s3",
            None,
            "delivered",
            None,
            None,
            None,
            None,
            "beta",
            "t",
        )
    ],
]
DEAD_LETTER_COLUMNS = (
    "route, ingest_id, report_index, received_at, remote_addr, content_type, failure_type, reason, "
    "normalizer_version, source_topic, source_partition, source_offset, dead_lettered_at, body, tenant"
)
DEAD_LETTER = (
    "cdr-push",
    "i6",
    -1,
    "2026-11-20 17:00:00",
    "203.0.113.7",
    "application/json",
    "invalid_json",
    "x",
    "t",
    "raw",
    0,
    6,
    "2026-11-20 17:00:01",
    "{",
    "acme",
)
LEDGER_COLUMNS = "hour, route, stage, instance, seq, count, tenant"
LEDGER = [
    ("2026-11-20 17:00:00", "cdr-push", stage, "n1", 1, count, "acme")
    for stage, count in (
        ("edge.accepted", 2),
        ("normalizer.raw_messages", 2),
        ("normalizer.events", 1),
        ("normalizer.dead_letters", 1),
    )
]
#: Rate cards, the assurance settings and the views that price and check events (schemas 008 and on).
BILLING_TABLES = ("rate_lines", "rate_cards", "billing_settings")
BILLING_VIEWS = ("rates", "rated_events", "rated_usage", "missing_cdrs", "stuck_messages", "charge_differences")


def sql_value(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def values(rows: list[tuple[object, ...]]) -> str:
    return ", ".join("(" + ", ".join(sql_value(v) for v in row) + ")" for row in rows)


def inserts() -> list[str]:
    settings = " SETTINGS distributed_foreground_insert = 1"  # what a cluster's sink is given (README)
    found = [f"INSERT INTO {EVENTS_TABLE} ({EVENT_COLUMNS}){settings} VALUES {values(batch)}" for batch in EVENTS]
    found += [f"INSERT INTO {DEAD_LETTERS_TABLE} ({DEAD_LETTER_COLUMNS}){settings} VALUES {values([DEAD_LETTER])}"] * 2
    found += [f"INSERT INTO {LEDGER_TABLE} ({LEDGER_COLUMNS}){settings} VALUES {values(LEDGER)}"] * 2
    return found


def billing_queries() -> dict[str, str]:
    blocks = re.findall(r"```sql\n(.*?)```", docs.all_docs_text(), re.DOTALL)
    billing = [b for b in blocks if "sum(charge)" in b and re.search(r"FROM ringback\.events\b", b)]
    assert len(billing) >= 2, "the docs' billing queries were not found"
    return {f"readme_billing_{i}": b.strip() + "\nFORMAT JSONEachRow" for i, b in enumerate(billing)}


#: The analysts' views, whole but for the order of a groupUniqArray (not fixed on any server).
VIEW_QUERIES = {
    "sms_messages": "SELECT * FROM ringback.sms_messages",
    "calls": "SELECT * REPLACE (arraySort(event_types) AS event_types) FROM ringback.calls",
    "cdrs": "SELECT * FROM ringback.cdrs",
    "sms_delivery_hourly": "SELECT * FROM ringback.sms_delivery_hourly",
    "daily_usage": "SELECT * FROM ringback.daily_usage",
    "dead_letters_by_reason": "SELECT * FROM ringback.dead_letters_by_reason",
}
#: The sink's conflict query looks at every variant (the store is new).
PARAMS = {"since": "1970-01-01 00:00:00.000"}


def queries() -> dict[str, str]:
    return {
        **billing_queries(),
        **VIEW_QUERIES,
        "reconcile_ledger": reconcile.ledger_query(RECONCILE_HOURS),
        "reconcile_stored_requests": reconcile.STORED_REQUESTS_QUERY.format(hours=RECONCILE_HOURS),
        "reconcile_unique": reconcile.UNIQUE_QUERY.format(hours=RECONCILE_HOURS),
        "conflicts": conflicts.FIND,
        "dead_letters": (
            "SELECT failure_type, count() AS n FROM ringback.dead_letters FINAL GROUP BY failure_type FORMAT "
            "JSONEachRow"
        ),
        "sum_over_events": "SELECT sum(charge) AS charge, count() AS events FROM ringback.events FORMAT JSONEachRow",
    }


def on_one_node(statements: list[str], cluster: str) -> list[str]:
    """What one node runs, without replication (it needs a Keeper): ON CLUSTER left to the caller, the
    replicated engines and settings in their plain form."""
    node = []
    for statement in statements:
        statement = statement.replace(f" ON CLUSTER {cluster}", "")
        statement = re.sub(r"Replicated(\w*MergeTree)\('[^']*', '\{replica\}'(?:, )?", r"\1(", statement)
        node.append(statement.replace("replicated_deduplication_window", "non_replicated_deduplication_window"))
    return node


def run_python(script: str, args: list[str], stdin: str) -> object:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], input=stdin, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_engine_parses_every_generated_statement() -> None:
    statements = {name: clickhouse.ddl_statements(schemas, cluster) for name, (schemas, cluster) in LISTS.items()}
    flat = [s for listed in statements.values() for s in listed]
    verdicts = run_python(PARSE, [], json.dumps(flat))
    assert isinstance(verdicts, list)
    failures = [(s.splitlines()[0], v["error"]) for s, v in zip(flat, verdicts, strict=True) if not v["ok"]]
    assert not failures, failures
    canonical = {v["canonical"].split("\n")[0] for v in verdicts}
    assert any(f"ON CLUSTER {CLUSTER}" in line for line in canonical)
    # and it read them as written: the engines, the paths with their macros, the sharding keys
    printed = "\n".join(v["canonical"] for v in verdicts)
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ringback/event_copies_local', '{replica}', "
        "arrival_rank)"
    ) in printed
    assert f"Distributed('{CLUSTER}', 'ringback', 'event_copies_local', cityHash64(event_id))" in printed


def test_the_parser_refuses_a_broken_statement() -> None:
    verdicts = run_python(
        PARSE,
        [],
        json.dumps(["CREATE TABLE ringback.t ON CLUSTER c (a String) ENGINE = Distributed('c', 'ringback', "]),
    )
    assert isinstance(verdicts, list) and verdicts[0]["ok"] is False


def store(tmp_path: Path, schemas: Path, cluster: str) -> dict[str, object]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = ""
    statements = clickhouse.ddl_statements(schemas, cluster)
    flush: list[str] = []
    if cluster:
        config_path = tmp_path / "config.xml"
        config_path.write_text(ONE_SHARD_CONFIG.format(cluster=cluster), encoding="utf-8")
        config = str(config_path)
        flush = re.findall(
            r"CREATE TABLE IF NOT EXISTS (\S+) ON CLUSTER \S+ AS \S+\nENGINE = Distributed", "\n\n".join(statements)
        )
        statements = on_one_node(statements, cluster)
    plan = {"ddl": statements, "inserts": inserts(), "flush": flush, "queries": queries(), "params": PARAMS}
    result = run_python(STORE, [str(tmp_path / "store"), config], json.dumps(plan))
    assert isinstance(result, dict)
    return result


def as_sets(answers: object) -> dict[str, list[str]]:
    assert isinstance(answers, dict)
    return {name: sorted(json.dumps(row, sort_keys=True) for row in rows) for name, rows in answers.items()}


def test_the_cluster_stores_and_answers_exactly_like_one_server(tmp_path: Path) -> None:
    one = store(tmp_path / "one", SCHEMAS, "")
    cluster = store(tmp_path / "cluster", SCHEMAS, CLUSTER)
    engines = {row["name"]: row["engine"] for row in cluster["tables"]}  # type: ignore[index]
    for table in (
        "event_copies",
        "dead_letters",
        "ledger",
        "ingests",
        "event_variants",
        "event_conflicts",
        "event_keys_v2",
    ):
        assert engines.pop(table) == "Distributed" and engines.pop(f"{table}_local") == "ReplacingMergeTree", table
    for table in BILLING_TABLES:
        assert engines.pop(table) == "Distributed" and engines.pop(f"{table}_local") == "MergeTree", table
    for view in BILLING_VIEWS:
        assert engines.pop(view) == "View", view
    views = {
        "events",
        "events_dedup",
        "dead_letter_status",
        "billing_today",  # now() in the billing zone: not compared (the two stores answer at other moments)
        *(name for name in re.findall(r"FROM ringback\.(\w+)", " ".join(VIEW_QUERIES.values()))),
    }
    assert engines == {
        **dict.fromkeys(views, "View"),
        **dict.fromkeys(
            (
                "ingests_from_event_copies",
                "ingests_from_dead_letters_v2",
                "event_variants_from_copies_v2",
                "event_keys_v2_from_copies",
            ),
            "MaterializedView",
        ),
    }
    assert as_sets(cluster["answers"]) == as_sets(one["answers"])  # some queries have no ORDER BY
    answers = one["answers"]
    assert isinstance(answers, dict)
    # exact: the resent report counts once, at its first arrival's charge; the two tenants' colliding vendor ids stay
    # apart
    assert answers["sum_over_events"] == [{"charge": 3.8, "events": 4}]
    by_tenant = {(r["tenant"], r["day"]): (r["events"], r["charge"]) for r in answers["readme_billing_1"]}
    assert by_tenant == {
        ("acme", "2026-11-20"): (1, 0.05),
        ("acme", "2026-11-21"): (1, 1.5),
        ("beta", "2026-11-21"): (2, 2.25),
    }
    assert {(r["tenant"], r["call_key"], r["charge"]) for r in answers["calls"]} == {
        ("acme", "r2", 1.5),
        ("beta", "r2", 2.25),
    }
    # the copies' disagreement is found through event_variants, filled from the local event copies
    assert [(r["event_id"], r["versions"]) for r in answers["conflicts"]] == [("e1", 2)]
    # the materialized views fed ingests on the node that stored the rows, through the distributed table
    stored = {(r["route"], r["tenant"]): r["stored_requests"] for r in answers["reconcile_stored_requests"]}
    assert stored == {
        ("tencent/voicecode", "acme"): 2,
        ("cdr-push", "acme"): 2,
        ("cdr-push", "beta"): 1,
        ("tencent/sms-status", "beta"): 1,
    }
    (ledger,) = answers["reconcile_ledger"]
    assert (ledger["accepted"], ledger["raw"], ledger["normalized"], ledger["dead_lettered"]) == (
        2,
        2,
        1,
        1,
    )  # loaded twice, counted once
    assert answers["dead_letters"] == [{"failure_type": "invalid_json", "n": 1}]


def test_a_restructured_schema_runs_on_a_cluster_node(tmp_path: Path) -> None:
    from tests.unit.test_cluster_ddl import RESTRUCTURED

    config = tmp_path / "config.xml"
    config.write_text(ONE_SHARD_CONFIG.format(cluster=CLUSTER), encoding="utf-8")
    plan = {
        "ddl": on_one_node(clickhouse.ddl_statements(RESTRUCTURED, CLUSTER), CLUSTER),
        "inserts": [
            (
                "INSERT INTO ringback.events_raw (event_id, event_type, tenant, received_at, charge) SETTINGS "
                "distributed_foreground_insert = 1 "
                "VALUES ('e1', 'call.cdr', 'acme', '2026-11-20 00:00:00', 1.5), ('e1', 'call.cdr', 'acme', "
                "'2026-11-20 00:00:00', 1.7)"
            )
        ],
        "flush": ["ringback.events_raw", "ringback.conflicts"],
        "queries": {
            "events": "SELECT count() AS n FROM ringback.events FORMAT JSONEachRow",
            "conflicts": (
                "SELECT event_id, length(groupUniqArrayMerge(charges)) AS charges FROM ringback.conflicts GROUP BY "
                "event_id FORMAT JSONEachRow"
            ),
        },
        "params": {},
    }
    result = run_python(STORE, [str(tmp_path / "store"), str(config)], json.dumps(plan))
    assert isinstance(result, dict)
    assert result["answers"] == {"events": [{"n": 1}], "conflicts": [{"event_id": "e1", "charges": 2}]}


REFUSE = r"""
import json, sys
import clickhouse_connect
from ringback.runtime import clickhouse
store, config, schemas, cluster = sys.argv[1:5]
setup = json.loads(sys.stdin.read())
client = clickhouse_connect.get_client(interface="chdb", path=store, chdb_options={"config-file": config})
if setup is None:
    clickhouse.apply_ddl(client, schemas)  # a single server's store
for statement in setup or []:
    client.command(statement)
def tables():
    sql = "SELECT name, engine, total_rows FROM system.tables WHERE database = 'ringback' ORDER BY name"
    return [list(row) for row in client.query(sql).result_rows]
before = tables()
try:
    clickhouse.apply_ddl(client, schemas, cluster)
    print(json.dumps({"refused": None}))
except ValueError as exc:
    print(json.dumps({"refused": str(exc), "unchanged": tables() == before}))
"""
FIRST_VERSION_DDL = FIXTURES / "ddl_v1"  # schemas/clickhouse as the first release shipped it
#: A cluster set up before ringback.events became a view: events were a distributed table.
EARLIER_CLUSTER = [
    "CREATE DATABASE ringback",
    (
        "CREATE TABLE ringback.events_local (event_id String, charge Decimal(18, 6)) ENGINE = ReplacingMergeTree "
        "ORDER BY event_id"
    ),
    (
        f"CREATE TABLE ringback.events AS ringback.events_local ENGINE = Distributed('{CLUSTER}', 'ringback', "
        "'events_local', cityHash64(event_id))"
    ),
    "INSERT INTO ringback.events_local VALUES ('e1', 1.5)",
]


def first_version() -> list[str]:
    text = "\n".join(
        line
        for path in sorted(FIRST_VERSION_DDL.glob("*.sql"))
        for line in path.read_text().splitlines()
        if not line.lstrip().startswith("--")
    )
    statements = [s.strip().replace("{on_cluster}", "") for s in text.split(";") if s.strip()]
    return [
        *statements,
        "INSERT INTO ringback.events (event_id, event_type, received_at) VALUES ('e1', 'call.cdr', now())",
    ]


@pytest.mark.parametrize(
    ("setup", "named"),
    [
        pytest.param(
            None,
            {
                "ringback.event_copies (ReplacingMergeTree instead of Distributed)",
                "ringback.dead_letters (ReplacingMergeTree instead of Distributed)",
                "ringback.ledger (ReplacingMergeTree instead of Distributed)",
                "ringback.ingests (ReplacingMergeTree instead of Distributed)",
                "ringback.event_variants (ReplacingMergeTree instead of Distributed)",
                "ringback.event_conflicts (ReplacingMergeTree instead of Distributed)",
                "ringback.event_keys_v2 (ReplacingMergeTree instead of Distributed)",
                *(f"ringback.{table} (MergeTree instead of Distributed)" for table in BILLING_TABLES),
            },
            id="single-server",
        ),
        pytest.param(
            first_version(),
            {
                "ringback.events (ReplacingMergeTree instead of View)",
                "ringback.dead_letters (ReplacingMergeTree instead of Distributed)",
                "ringback.ledger (ReplacingMergeTree instead of Distributed)",
            },
            id="first-version",
        ),
        pytest.param(EARLIER_CLUSTER, {"ringback.events (Distributed instead of View)"}, id="earlier-cluster"),
    ],
)
def test_a_store_that_is_not_this_clusters_is_refused_before_anything_runs(
    tmp_path: Path, setup: list[str] | None, named: set[str]
) -> None:
    config = tmp_path / "config.xml"
    config.write_text(ONE_SHARD_CONFIG.format(cluster=CLUSTER), encoding="utf-8")
    result = run_python(REFUSE, [str(tmp_path / "store"), str(config), str(SCHEMAS), CLUSTER], json.dumps(setup))
    assert isinstance(result, dict) and result["refused"], result
    message = str(result["refused"])
    assert message.startswith("cluster DDL: ") and message.endswith("(docs/scaling.md)")
    assert set(re.findall(r"ringback\.\w+ \(\w+ instead of \w+\)", message)) == named
    assert result["unchanged"]  # nothing ran: the tables in the way and their rows are still there


TWO_SHARDS_CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  <macros><shard>01</shard><replica>r1</replica></macros>
  <remote_servers>
    <{cluster}>
      <shard><internal_replication>true</internal_replication><replica><host>localhost</host><port>9000</port></replica></shard>
      <shard><internal_replication>true</internal_replication><replica><host>127.0.0.1</host><port>9000</port></replica></shard>
    </{cluster}>
  </remote_servers>
</clickhouse>
"""

CONFLICTS = r"""
import json, sys
import clickhouse_connect
from ringback.sink.conflicts import ConflictWatcher
store, config = sys.argv[1:3]
plan = json.loads(sys.stdin.read())
client = clickhouse_connect.get_client(interface="chdb", path=store, chdb_options={"config-file": config})
for statement in plan["ddl"] + plan["inserts"]:
    client.command(statement)
print(json.dumps({"new_conflicts": ConflictWatcher(0).look(client)}))
"""


def test_the_sink_finds_conflicts_on_a_cluster_of_two_shards(tmp_path: Path) -> None:
    """The sink's conflict query has a subquery over a distributed table, which ClickHouse refuses on a
    cluster of more than one shard unless told how to run it. Both shards here are this node (an embedded
    engine serves no other), so every row is read twice: what this shows is that the query is accepted
    and finds the resent report whose copies disagree, not the counts of a real cluster."""
    config = tmp_path / "config.xml"
    config.write_text(TWO_SHARDS_CONFIG.format(cluster=CLUSTER), encoding="utf-8")
    plan = {"ddl": on_one_node(clickhouse.ddl_statements(SCHEMAS, CLUSTER), CLUSTER), "inserts": inserts()}
    assert run_python(CONFLICTS, [str(tmp_path / "store"), str(config)], json.dumps(plan)) == {"new_conflicts": 1}


CLUSTER_KEYS = r"""
import json, sys
import clickhouse_connect
from ringback.runtime import upgrades
from ringback.sink.placement import Placed, stored_times
store, config, cluster = sys.argv[1:4]
plan = json.loads(sys.stdin.read())
client = clickhouse_connect.get_client(interface="chdb", path=store, chdb_options={"config-file": config})
class OneNode:
    '''What one node runs of the upgrade's statements: ON CLUSTER left to the caller, as for the DDL.'''
    def __init__(self, client):
        self.client = client
    def command(self, sql, **kwargs):
        return self.client.command(sql.replace(f" ON CLUSTER {cluster}", ""), **kwargs)
    def query(self, sql, **kwargs):
        return self.client.query(sql, **kwargs)
for statement in plan["old"]:
    client.command(statement)
client.command("INSERT INTO ringback.event_keys (event_id, occurred_at) VALUES ('old-key', '2026-12-01 11:19:58')")
client.command("SYSTEM FLUSH DISTRIBUTED ringback.event_keys")
for statement in plan["new"]:
    client.command(statement)
upgrades.move_event_keys(OneNode(client), cluster)
client.command("SYSTEM FLUSH DISTRIBUTED ringback.event_keys_v2")
tables = [r[0] for r in client.query(
    "SELECT name FROM system.tables WHERE database = 'ringback' AND name LIKE 'event_keys%' ORDER BY name").result_rows]
times = stored_times(client, [Placed("r", "old-key", 1, 7), Placed("r", "new", 1, 7)])
print(json.dumps({"tables": tables, "times": times}))
"""


def test_a_clusters_stored_times_move_to_the_table_sorted_by_id_hash(tmp_path: Path) -> None:
    """A cluster's first ``event_keys`` (distributed, sorted by event id) is copied into ``event_keys_v2``
    through the distributed tables and dropped with its local tables and view; the sink's lookup, by
    the id's hash, reads the times from the distributed table."""
    config = tmp_path / "config.xml"
    config.write_text(ONE_SHARD_CONFIG.format(cluster=CLUSTER), encoding="utf-8")
    old = clickhouse.sql_statements(FIXTURES / "ddl_v4")
    plan = {
        "old": on_one_node(cluster_ddl.cluster_statements(old, CLUSTER), CLUSTER),
        "new": on_one_node(clickhouse.ddl_statements(SCHEMAS, CLUSTER), CLUSTER),
    }
    result = run_python(CLUSTER_KEYS, [str(tmp_path / "store"), str(config), CLUSTER], json.dumps(plan))
    assert result == {
        "tables": ["event_keys_v2", "event_keys_v2_from_copies", "event_keys_v2_local"],
        "times": {"old-key": 1_796_123_998_000_000, "new": 7},
    }
