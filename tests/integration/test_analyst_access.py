"""What an analyst can reach, on a running `ringback run` and on its stopped store: saved views that are
links or not queries are refused and logged without their content; a secret never reaches a log or a
table an analyst can read; only the allowed system tables answer; money comes as JSON strings when
asked (output settings), every other setting is refused."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from ringback.runtime import clickhouse, query_guard
from ringback.runtime.query_guard import QueryRefused
from ringback.sink import analyst_views
from tests.pipeline import Pipeline, post, ringback

pytestmark = pytest.mark.integration

SECRET = f"SECRET-CANARY-{uuid.uuid4().hex}"
#: In an analyst's own view file that the parser cannot read.
TYPO = f"TYPO-CANARY-{uuid.uuid4().hex}"
REQUEST_ID = f"MONEY-{uuid.uuid4().hex[:8]}"
CDR = {
    "cdr": [
        {
            "requestid": REQUEST_ID,
            "appid": "appM",
            "fid": "2",
            "tel": "13800000001",
            "stime": "2026-12-01 11:19:36",
            "etime": "2026-12-01 11:19:58",
            "duration": "10",
            "oriamount": "0.06",
        }
    ]
}
MONEY_QUERY = f"SELECT charge FROM ringback.events WHERE request_id = '{REQUEST_ID}' FORMAT JSONEachRow"
QUOTE_DECIMALS = "output_format_json_quote_decimals"
#: System tables that show other sessions' queries, errors, paths or the server's set-up.
FORBIDDEN = ["processes", "errors", "disks", "query_log", "parts", "clusters", "macros", "server_settings", "users"]
#: A call of each allowed table function (their names are kept in lower case).
TABLE_FUNCTION_CALLS = {
    "numbers": "numbers(1)",
    "generate_series": "generate_series(1, 2)",
    "generateseries": "generateSeries(1, 2)",
    "values": "values('x UInt8', 1)",
    "view": "view(SELECT 1)",
}
ENGINE_LIMITS = clickhouse.QueryLimits(
    timeout_s=10.0, max_memory_bytes=1 << 28, max_result_rows=100_000, max_result_bytes=1 << 26, max_threads=1
)
STORED_WAIT_S = 60.0
LOG_WAIT_S = 60.0


def sql(data_dir: Path, query: str, *flags: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ringback("sql", "--data-dir", str(data_dir), *flags, query), capture_output=True, timeout=120, cwd=cwd
    )


@dataclass
class Setup:
    pipeline: Pipeline
    views: Path


def hostile_views(root: Path) -> Path:
    """A views folder with one good file and every way to make the sink read the tenants file."""
    tenants = root / "tenants.toml"
    tenants.write_text(f'[tenants.acme]\nsecret = "{SECRET}"\n')
    views = root / "views"
    views.mkdir()
    (views / "good.sql").write_text("SELECT count() AS events FROM ringback.events")
    (views / "leak.sql").symlink_to(tenants)
    (views / "up.sql").symlink_to("../tenants.toml")
    os.link(tenants, views / "hard.sql")
    (views / "copied.sql").write_text(tenants.read_text())
    # The parser's message quotes the text from where it failed: here, the canary.
    (views / "broken.sql").write_text(f"SELECT 1 FROM t WHERE x = = '{TYPO}'")
    (views / "unknown.sql").write_text(f"SELECT '{SECRET}' AS s FROM ringback.no_such_table")
    os.mkfifo(views / "pipe.sql")
    return views


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("analyst-access")
    views = hostile_views(root)
    running = Pipeline(root / "data", extra_args=["--analyst-views-dir", str(views)]).start()
    yield Setup(running, views)
    running.stop()


def test_view_files_that_are_links_or_no_query_are_refused_by_name_without_their_content(setup: Setup) -> None:
    log = setup.pipeline.wait_for_log("analyst views", timeout_s=LOG_WAIT_S)
    refused = [line for line in log.splitlines() if "analyst view refused" in line]
    for name in ("leak", "up", "hard", "copied", "broken", "unknown", "pipe"):
        assert any(f"{name}.sql" in line for line in refused), (name, refused)
    assert SECRET not in log and TYPO not in log
    shown = sql(setup.pipeline.data_dir, "SHOW TABLES FROM analyst")
    assert shown.returncode == 0 and shown.stdout == b"good\n", shown.stderr


def readable_query(table: str, columns: list[str]) -> str:
    hidden = query_guard.PATH_COLUMNS_OF.get(table.split(".")[-1], ()) if table.startswith("system.") else ()
    named = ", ".join(f"`{column}`" for column in columns if column not in hidden)
    return f"SELECT {named} FROM {table} LIMIT 100000 FORMAT TSV"


def test_no_table_an_analyst_can_read_holds_the_secret(setup: Setup) -> None:
    setup.pipeline.wait_for_log("analyst views", timeout_s=LOG_WAIT_S)
    listed = sql(
        setup.pipeline.data_dir,
        "SELECT database, table, groupArray(name) AS columns FROM system.columns "
        "WHERE database IN ('system', 'information_schema') GROUP BY database, table FORMAT JSONEachRow",
    )
    assert listed.returncode == 0, listed.stderr
    readable = [
        (f"{row['database']}.{row['table']}", row["columns"])
        for row in map(json.loads, listed.stdout.splitlines())
        if row["database"] == "information_schema" or row["table"] in query_guard.ALLOWED_SYSTEM_TABLES
    ]
    assert len(readable) > len(query_guard.ALLOWED_SYSTEM_TABLES)  # information_schema too
    for table, columns in readable:
        if table.split(".")[-1] in ("numbers", "numbers_mt", "zeros", "zeros_mt"):
            continue
        done = sql(setup.pipeline.data_dir, readable_query(table, columns))
        assert done.returncode == 0, (table, done.stderr)
        assert SECRET.encode() not in done.stdout, table


@pytest.mark.parametrize("table", FORBIDDEN)
def test_system_tables_off_the_list_are_refused_through_the_running_sink(setup: Setup, table: str) -> None:
    done = sql(setup.pipeline.data_dir, f"SELECT * FROM system.{table}")
    assert done.returncode == 1 and b"query refused (readonly): system table" in done.stderr, done.stderr
    assert done.stdout == b""


def test_the_process_list_and_the_paths_of_tables_are_refused(setup: Setup) -> None:
    for query in ("SHOW PROCESSLIST", "SELECT data_paths FROM system.tables", "SELECT * FROM system.databases"):
        done = sql(setup.pipeline.data_dir, query)
        assert done.returncode == 1 and b"query refused (readonly)" in done.stderr, (query, done.stderr)
    named = sql(
        setup.pipeline.data_dir, "SELECT name FROM system.tables WHERE database = 'ringback' AND name = 'events'"
    )
    assert named.stdout == b"events\n", named.stderr


def stored_money(pipeline: Pipeline) -> None:
    assert post(f"{pipeline.edge_url}/callbacks/cdr-push", json.dumps(CDR).encode())[0] == 200
    deadline = time.monotonic() + STORED_WAIT_S
    while sql(pipeline.data_dir, MONEY_QUERY).stdout == b"":
        assert time.monotonic() < deadline, "the CDR was never stored"
        time.sleep(0.5)


def assert_money_as_asked(data_dir: Path) -> None:
    assert sql(data_dir, MONEY_QUERY).stdout == b'{"charge":0.06}\n'
    by_flag = sql(data_dir, MONEY_QUERY, "--setting", f"{QUOTE_DECIMALS}=1")
    assert by_flag.returncode == 0 and by_flag.stdout == b'{"charge":"0.06"}\n', by_flag.stderr
    by_clause = sql(data_dir, MONEY_QUERY + f" SETTINGS {QUOTE_DECIMALS} = 1, output_format_decimal_trailing_zeros = 1")
    assert by_clause.returncode == 0 and by_clause.stdout == b'{"charge":"0.060000"}\n', by_clause.stderr
    for flags in (["--setting", "max_result_rows=0"], ["--setting", "readonly=0"]):
        refused = sql(data_dir, MONEY_QUERY, *flags)
        assert refused.returncode == 1 and b"SETTINGS clause" in refused.stderr, refused.stderr
    malformed = sql(data_dir, MONEY_QUERY, "--setting", QUOTE_DECIMALS)
    assert malformed.returncode == 2 and b"NAME=VALUE" in malformed.stderr, malformed.stderr


def test_money_comes_as_json_strings_when_asked_through_the_running_sink(setup: Setup) -> None:
    stored_money(setup.pipeline)
    assert_money_as_asked(setup.pipeline.data_dir)
    for query in (
        "SELECT 1 EXCEPT SELECT 2",
        "SELECT 1 FORMAT Null",
        "SELECT count() FROM numbers(3) WHERE (SELECT 1) = 1",
    ):
        done = sql(setup.pipeline.data_dir, query)
        assert done.returncode == 0, (query, done.stderr)


def test_sql_from_elsewhere_says_where_it_looked(setup: Setup, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGBACK_")}
    done = subprocess.run(ringback("sql", "SELECT 1"), capture_output=True, timeout=120, cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert str(tmp_path.resolve()).encode() in done.stderr and b"--data-dir" in done.stderr, done.stderr


def test_the_stopped_store_opened_directly(setup: Setup) -> None:
    """The same answers with the store opened by `ringback sql` itself (the pipeline is started again
    afterwards for the module's other tests)."""
    stored_money(setup.pipeline)
    assert setup.pipeline.stop() == 0, setup.pipeline.log()
    try:
        assert_money_as_asked(setup.pipeline.data_dir)
        done = sql(setup.pipeline.data_dir, "SELECT * FROM system.errors")
        assert done.returncode == 1 and b"system table system.errors" in done.stderr, done.stderr
    finally:
        setup.pipeline.start()


def test_every_system_table_off_the_list_is_refused_and_those_on_it_run(chdb_dir: Path) -> None:
    reader: Client = clickhouse.connect_reader(f"chdb://{chdb_dir}", ENGINE_LIMITS)
    try:
        names = reader.raw_query("SHOW TABLES FROM system").decode().split()
        assert len(names) > len(query_guard.ALLOWED_SYSTEM_TABLES)
        for name in names:
            query = f"SELECT * FROM system.{name} LIMIT 1"
            if name in query_guard.ALLOWED_SYSTEM_TABLES:
                if name not in query_guard.PATH_COLUMNS_OF:
                    clickhouse.run_read_only(reader, query, "TSV")
                continue
            with pytest.raises(QueryRefused, match=f"system table system.{name} is not allowed"):
                clickhouse.run_read_only(reader, query, "TSV")
        for function in sorted(query_guard.ALLOWED_TABLE_FUNCTIONS):  # each runs under readonly=1
            clickhouse.run_read_only(reader, f"SELECT count() FROM {TABLE_FUNCTION_CALLS[function]}", "TSV")
    finally:
        reader.close()


def test_the_tenants_file_never_reaches_the_engine_and_a_typo_is_refused_without_its_text(
    chdb_dir: Path, tmp_path: Path
) -> None:
    views = hostile_views(tmp_path)
    # A query that parses but names an unknown table is refused by the engine itself, which keeps its
    # own error: that file is the analyst's SQL, not another file's content (the log never has it).
    (views / "unknown.sql").unlink()
    writer = clickhouse.connect(f"chdb://{chdb_dir}")
    reader = clickhouse.connect_reader(f"chdb://{chdb_dir}", ENGINE_LIMITS)
    try:
        applied = analyst_views.apply(writer, lambda query, fmt: reader.raw_query(query, fmt=fmt), views)
        reasons = {refusal.path.name: refusal.reason for refusal in applied.refused}
        assert reasons["broken.sql"] == query_guard.NOT_PARSED
        assert all(SECRET not in reason and TYPO not in reason for reason in reasons.values()), reasons
        # Links, hard links and a copied tenants file are refused before any engine sees them.
        errors = writer.raw_query("SELECT groupArray(last_error_message) FROM system.errors FORMAT TSV")
        assert SECRET.encode() not in errors
    finally:
        reader.close()
        writer.close()
