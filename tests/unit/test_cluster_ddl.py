"""The cluster DDL made from schemas/clickhouse: replicated local tables on every node, distributed
tables under the names analysts use, sharded so that every copy of an event lands on one shard.

Golden files: tests/fixtures/cluster_ddl/*.sql hold the statement lists (one server, a cluster);
``RINGBACK_UPDATE_GOLDEN=1`` rewrites them for review. The engine's parser reads every statement in
tests/integration/test_cluster_ddl_engine.py."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ringback.runtime import clickhouse, cluster_ddl
from ringback.runtime.cluster_ddl import LOCAL_SUFFIX, ClusterDDLError, cluster_statements
from ringback.sink.conflicts import CONFLICTS_TABLE
from ringback.sink.store import DEAD_LETTERS_TABLE, EVENTS_TABLE, LEDGER_TABLE
from tests.conftest import FIXTURES, REPO_ROOT

GOLDEN = FIXTURES / "cluster_ddl"
CLUSTER = "ringback_cluster"
SCHEMAS = REPO_ROOT / "schemas"
RESTRUCTURED = GOLDEN / "restructured"  # a schemas/ folder shaped like the next version's
LISTS = {
    "single_server.sql": (SCHEMAS, ""),
    "cluster.sql": (SCHEMAS, CLUSTER),
    "restructured_cluster.sql": (RESTRUCTURED, CLUSTER),
}


def as_file(statements: list[str]) -> str:
    return "".join(statement + ";\n\n" for statement in statements)


def raw_statements(schemas: Path) -> list[str]:
    """The statements as written, {on_cluster} still in them."""
    text = "\n".join(
        line
        for path in sorted((schemas / "clickhouse").glob("*.sql"))
        for line in path.read_text().splitlines()
        if not line.lstrip().startswith("--")
    )
    return [s.strip() for s in text.split(";") if s.strip()]


@pytest.mark.parametrize("name", sorted(LISTS))
def test_golden_statement_lists(name: str) -> None:
    schemas, cluster = LISTS[name]
    text = as_file(clickhouse.ddl_statements(schemas, cluster))
    path = GOLDEN / name
    if os.environ.get("RINGBACK_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no {path.name}; run with RINGBACK_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{path.name} differs: run with RINGBACK_UPDATE_GOLDEN=1 and review the diff"
    )


def test_one_server_gets_the_ddl_as_written() -> None:
    assert clickhouse.ddl_statements(SCHEMAS) == [
        s.replace("{on_cluster}", "").replace("{billing_timezone}", "'Asia/Shanghai'") for s in raw_statements(SCHEMAS)
    ]


def merge_tree_tables(schemas: Path) -> list[str]:
    """The tables the single-server DDL creates with an engine of the MergeTree family, read from it."""
    found = []
    for statement in raw_statements(schemas):
        match = re.match(r"CREATE TABLE (?:IF NOT EXISTS )?(\S+) .*?ENGINE = \w*MergeTree\b", statement, re.DOTALL)
        if match:
            found.append(match.group(1))
    return found


@pytest.mark.parametrize("schemas", [SCHEMAS, RESTRUCTURED], ids=["schemas", "restructured"])
def test_every_table_is_replicated_locally_and_distributed_under_its_own_name(schemas: Path) -> None:
    statements = clickhouse.ddl_statements(schemas, CLUSTER)
    tables = merge_tree_tables(schemas)
    assert tables
    for table in tables:
        database, name = table.split(".")
        (local,) = [
            s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS {table}_local ON CLUSTER {CLUSTER}\n")
        ]
        assert re.search(
            rf"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/{{shard}}/{database}/{name}_local', '{{replica}}'",
            local,
        )
        assert "non_replicated_deduplication_window" not in local
        (distributed,) = [
            s
            for s in statements
            if s.startswith(f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {CLUSTER} AS {table}_local\n")
        ]
        assert f"ENGINE = Distributed('{CLUSTER}', '{database}', '{name}_local', cityHash64(" in distributed
        assert statements.index(local) < statements.index(distributed)
    for statement in statements:
        assert f"ON CLUSTER {CLUSTER}" in statement and "{on_cluster}" not in statement


def shard_keys(statements: list[str]) -> dict[str, str]:
    pattern = re.compile(
        r"CREATE TABLE IF NOT EXISTS (\S+) ON CLUSTER \w+ AS \S+\nENGINE = Distributed\('\w+', '\w+', '\w+', (.*)\)"
    )
    return dict(match.groups() for match in map(pattern.fullmatch, statements) if match)


def test_events_are_sharded_by_event_id_and_other_tables_by_what_collapses() -> None:
    keys = shard_keys(clickhouse.ddl_statements(SCHEMAS, CLUSTER))
    assert keys == {
        # every copy of an event, and every variant and conflict of it, on the shard of its event id
        "ringback.event_copies": "cityHash64(event_id)",
        "ringback.event_variants": "cityHash64(event_id)",
        "ringback.event_conflicts": "cityHash64(event_id)",
        "ringback.event_keys_v2": "cityHash64(event_id)",
        # rows a ReplacingMergeTree collapses share their sorting key, so they share a shard
        "ringback.dead_letters": "cityHash64(route, ingest_id, report_index)",
        "ringback.ledger": "cityHash64(hour, route, stage, instance, seq, tenant)",
        "ringback.ingests": "cityHash64(hour, route, ingest_id)",
        # rate cards and the assurance settings: small, read whole
        "ringback.rate_lines": "cityHash64(card_version, line)",
        "ringback.rate_cards": "cityHash64(card_version)",
        "ringback.billing_settings": "cityHash64(name, set_at)",
    }
    restructured = shard_keys(clickhouse.ddl_statements(RESTRUCTURED, CLUSTER))
    assert restructured == {
        "ringback.events_raw": "cityHash64(event_id)",
        "ringback.conflicts": "cityHash64(event_id)",
        "ringback.audit": "cityHash64(day)",
    }


@pytest.mark.parametrize(
    ("order_by", "shard_by"),
    [
        ("(event_type, event_id)", "cityHash64(event_id)"),
        ("event_id", "cityHash64(event_id)"),
        ("(route, ingest_id)", "cityHash64(route, ingest_id)"),  # an event_id column outside the key does not decide
        ("(toStartOfHour(at), cityHash64(event_id))", "cityHash64(toStartOfHour(at), cityHash64(event_id))"),
    ],
)
def test_the_shard_key_follows_the_sorting_key(order_by: str, shard_by: str) -> None:
    statement = (
        "CREATE TABLE IF NOT EXISTS ringback.t {on_cluster} (event_id String, event_type String, route String, "
        f"ingest_id String, at DateTime) ENGINE = ReplacingMergeTree ORDER BY {order_by}"
    )
    assert shard_keys(cluster_statements([statement], CLUSTER)) == {"ringback.t": shard_by}


def test_the_sink_inserts_into_distributed_tables() -> None:
    distributed = shard_keys(clickhouse.ddl_statements(SCHEMAS, CLUSTER))
    assert {EVENTS_TABLE, DEAD_LETTERS_TABLE, LEDGER_TABLE, CONFLICTS_TABLE} <= set(distributed)


def materialized_views(statements: list[str]) -> dict[str, str]:
    pattern = re.compile(r"CREATE MATERIALIZED VIEW IF NOT EXISTS (\S+) ")
    return {match.group(1): statement for statement in statements if (match := pattern.match(statement))}


def test_views_stay_over_the_distributed_tables_and_materialized_views_read_the_local_ones() -> None:
    statements = clickhouse.ddl_statements(SCHEMAS, CLUSTER)
    (events,) = [
        s for s in statements if s.startswith(f"CREATE OR REPLACE VIEW ringback.events ON CLUSTER {CLUSTER} AS")
    ]
    assert "FROM ringback.event_copies FINAL" in events  # FINAL runs on every shard, where all copies of an event are
    (dedup,) = [s for s in statements if s.startswith("CREATE OR REPLACE VIEW ringback.events_dedup")]
    assert dedup.endswith("FROM ringback.events")
    plain = [s for s in statements if re.match(r"CREATE (OR REPLACE )?VIEW ", s)]
    assert len(plain) == len([s for s in raw_statements(SCHEMAS) if re.match(r"CREATE (OR REPLACE )?VIEW ", s)]) > 2
    assert not [s for s in plain if LOCAL_SUFFIX in s]  # the names analysts query span the cluster
    views = materialized_views(statements)
    targets = {
        "ringback.ingests_from_event_copies": ("ringback.ingests", "ringback.event_copies_local"),
        "ringback.ingests_from_dead_letters_v2": ("ringback.ingests", "ringback.dead_letters_local"),
        "ringback.event_variants_from_copies_v2": ("ringback.event_variants", "ringback.event_copies_local"),
        "ringback.event_keys_v2_from_copies": ("ringback.event_keys_v2", "ringback.event_copies_local"),
    }
    assert set(views) == set(targets)
    for name, (target, source) in targets.items():
        assert f" TO {target} AS" in views[name]  # written through the distributed table: sharded like it
        assert views[name].endswith(f"FROM {source}")  # fired by what is inserted on its node
    restructured = clickhouse.ddl_statements(RESTRUCTURED, CLUSTER)
    (events,) = [s for s in restructured if s.startswith("CREATE VIEW IF NOT EXISTS ringback.events ")]
    assert events.endswith("FROM ringback.events_raw FINAL")
    (conflicts,) = [s for s in restructured if s.startswith("CREATE MATERIALIZED VIEW")]
    assert "TO ringback.conflicts AS" in conflicts and "FROM ringback.events_raw_local GROUP BY" in conflicts


def test_alter_reaches_the_local_tables_and_column_changes_the_distributed_one() -> None:
    statements = clickhouse.ddl_statements(RESTRUCTURED, CLUSTER)
    (local,) = [s for s in statements if s.startswith("ALTER TABLE ringback.events_raw_local ")]
    assert (
        "ADD INDEX IF NOT EXISTS by_source" in local
        and "MODIFY SETTING replicated_deduplication_window = 20000" in local
    )
    (distributed,) = [s for s in statements if s.startswith("ALTER TABLE ringback.events_raw ")]
    assert distributed == (
        f"ALTER TABLE ringback.events_raw ON CLUSTER {CLUSTER}\n    ADD COLUMN IF NOT EXISTS source "
        "LowCardinality(String) AFTER event_type"
    )
    ledger = [s for s in clickhouse.ddl_statements(SCHEMAS, CLUSTER) if s.startswith("ALTER TABLE ringback.ledger")]
    assert (
        "MODIFY ORDER BY" in ledger[0] and "MODIFY ORDER BY" not in ledger[1]
    )  # a distributed table has no sorting key


def test_create_or_replace_view_runs_on_every_node_as_written() -> None:
    statement = "CREATE OR REPLACE VIEW ringback.v {on_cluster} AS\nSELECT count() FROM ringback.t FINAL"
    table = (
        "CREATE TABLE IF NOT EXISTS ringback.t {on_cluster} (event_id String) ENGINE = ReplacingMergeTree ORDER BY "
        "event_id"
    )
    assert (
        cluster_statements([table, statement], CLUSTER)[-1]
        == f"CREATE OR REPLACE VIEW ringback.v ON CLUSTER {CLUSTER} AS\nSELECT count() FROM ringback.t FINAL"
    )


def test_drop_table_drops_both_halves() -> None:
    statements = clickhouse.ddl_statements(RESTRUCTURED, CLUSTER)
    assert statements[-2:] == [
        f"DROP TABLE IF EXISTS ringback.events_old ON CLUSTER {CLUSTER}",
        f"DROP TABLE IF EXISTS ringback.events_old_local ON CLUSTER {CLUSTER}",
    ]


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        (
            "CREATE TABLE IF NOT EXISTS ringback.t (a String) ENGINE = MergeTree ORDER BY a",
            "needs exactly one {on_cluster}",
        ),
        (
            (
                "CREATE MATERIALIZED VIEW ringback.v {on_cluster} ENGINE = MergeTree ORDER BY a AS SELECT a FROM "
                "ringback.t"
            ),
            "needs TO a table",
        ),
        ("RENAME TABLE ringback.t TO ringback.u {on_cluster}", "no cluster form is known"),
        (
            "CREATE OR REPLACE TABLE ringback.t {on_cluster} (a String) ENGINE = MergeTree ORDER BY a",
            "no cluster form is known",
        ),
        ("CREATE OR REPLACE VIEW ringback.v AS SELECT 1", "needs exactly one {on_cluster}"),
        ("INSERT INTO ringback.t VALUES ('x')", "no cluster form is known"),
        ("DROP TABLE ringback.t {on_cluster}", "needs IF EXISTS"),
        ("CREATE TABLE ringback.m {on_cluster} (a String) ENGINE = Memory", "only tables of the MergeTree family"),
        ("CREATE TABLE t {on_cluster} (a String) ENGINE = MergeTree ORDER BY a", "name the table with its database"),
        (
            "CREATE TABLE ringback.r {on_cluster} (a String) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a",
            "must not be replicated already",
        ),
        ("CREATE TABLE ringback.n {on_cluster} (a String) ENGINE = MergeTree ORDER BY tuple()", "needs a sorting key"),
        ("ALTER TABLE ringback.nothing {on_cluster} ADD COLUMN b String", "ALTER is known only for"),
    ],
)
def test_what_cannot_be_spread_over_a_cluster_is_refused_with_its_reason(statement: str, reason: str) -> None:
    with pytest.raises(ClusterDDLError, match=re.escape(reason)):
        cluster_statements([statement], CLUSTER)


def test_the_cluster_name_must_be_an_identifier() -> None:
    with pytest.raises(ValueError, match="plain identifier"):
        cluster_statements(raw_statements(SCHEMAS), "a-b; DROP")


def test_tokens_keep_strings_and_quoted_names_whole() -> None:
    kinds = [(t.kind, t.text) for t in cluster_ddl.tokens("SELECT 'a;b''c', `x.y` /* c */ FROM {on_cluster}")]
    assert kinds == [
        ("word", "SELECT"),
        ("string", "'a;b''c'"),
        ("punct", ","),
        ("quoted", "`x.y`"),
        ("word", "FROM"),
        ("placeholder", "{on_cluster}"),
    ]
