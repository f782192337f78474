"""Analyst queries are read-only and bounded: every escape tried against the real embedded engine, in
this process and through `ringback sql` against a running `ringback run` and a stopped one's store."""

from __future__ import annotations

import asyncio
import json
import re
import stat
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from ringback.config import Settings
from ringback.runtime import clickhouse, kafka
from ringback.runtime.broker import EmbeddedBroker
from ringback.runtime.query_guard import QueryNotParsed, QueryRefused
from ringback.sink.worker import Sink
from tests import docs
from tests.conftest import REPO_ROOT
from tests.integration.test_views import cookbook_queries
from tests.kafka_helpers import produce
from tests.pipeline import Pipeline, post, ringback

pytestmark = pytest.mark.integration

TEST_LIMITS = clickhouse.QueryLimits(
    timeout_s=2.0, max_memory_bytes=268_435_456, max_result_rows=1000, max_result_bytes=1_048_576, max_threads=1
)
#: Runs until any time limit stops it.
ENDLESS_QUERY = "SELECT sum(cityHash64(number)) FROM numbers(1000000000000)"
SMS_ROUTE = "/callbacks/tencent/sms-status"

#: (escape, what the refusal names); {canary} is a file whose content must never come back, {target} a
#: file that must never be written. Keywords are hidden in comments, mixed case and heredocs too.
ESCAPES = [
    ("SELECT * FROM file('{canary}', 'RawBLOB')", "table function file()"),
    ("SELECT file('{canary}')", "function file()"),
    ("SELECT 'x' IN file('{canary}', 'RawBLOB')", "function file()"),
    ("SeLeCt FiLe('{canary}')", "function FiLe()"),
    ("SELECT file/* a comment */('{canary}')", "function file()"),
    ("DESCRIBE file('{canary}', 'RawBLOB')", "table function file()"),
    ("SELECT * FROM view(SELECT file('{canary}'))", "function file()"),
    ("SELECT * FROM url('http://127.0.0.1:9/x', 'RawBLOB')", "table function url()"),
    ("SELECT * FROM s3('http://127.0.0.1:9/bucket/key', 'RawBLOB')", "table function s3()"),
    ("SELECT * FROM remote('127.0.0.1:9', system.one)", "table function remote()"),
    ("SELECT * FROM executable('touch {target}', 'RawBLOB', 'x String')", "table function executable()"),
    (
        "SELECT * FROM ringback.events AS e JOIN mysql('127.0.0.1:9', 'd', 't', 'u', 'p') AS m ON 1",
        "table function mysql()",
    ),
    ("SELECT dictGet('some_dictionary', 'x', toUInt64(1))", "function dictGet()"),
    ("SELECT 1 INTO OUTFILE '{target}'", "INTO OUTFILE"),
    ("SELECT 1 INTO OUTFILE '{target}' APPEND", "INTO OUTFILE"),
    ("SELECT 'x' INTO OUTFILE '{target}' FORMAT RawBLOB", "INTO OUTFILE"),
    ("SELECT 'x' INTO OUTFILE '{target}' APPEND FORMAT RawBLOB", "INTO OUTFILE"),
    ("SHOW TABLES FROM ringback INTO OUTFILE '{target}'", "INTO OUTFILE"),
    ("SELECT 1 /* c */ INTO/**/OUTFILE '{target}'", "INTO OUTFILE"),
    ("SELECT 1 -- c\nINTO OUTFILE '{target}'", "INTO OUTFILE"),
    ("SELECT 1 # c\nInTo OuTfIlE '{target}'", "INTO OUTFILE"),
    ("SELECT $$INTO$$ INTO OUTFILE '{target}'", "INTO OUTFILE"),
    ("INSERT INTO FUNCTION file('{target}', 'RawBLOB') SELECT 'x'", "INSERT statements"),
    ("INSERT INTO ringback.ledger SELECT * FROM ringback.ledger", "INSERT statements"),
    (
        "EXPLAIN AST INSERT INTO FUNCTION file('{target}', 'RawBLOB') SELECT 'x'",
        "EXPLAIN is allowed for one SELECT only",
    ),
    ("CREATE TABLE ringback.escape (x UInt8) ENGINE = Memory", "CREATE statements"),
    ("DROP TABLE ringback.events", "DROP statements"),
    ("ALTER TABLE ringback.events DELETE WHERE 1", "ALTER statements"),
    ("OPTIMIZE TABLE ringback.events FINAL", "OPTIMIZE statements"),
    ("TRUNCATE TABLE ringback.ledger", "TRUNCATE statements"),
    ("SET readonly = 0", "SET statements"),
    ("SELECT 1 SETTINGS readonly = 0", "SETTINGS clause"),
    ("SELECT count() FROM numbers(10) SETTINGS max_execution_time = 100000", "SETTINGS clause"),
    ("SELECT * FROM (SELECT 1 SETTINGS max_threads = 64)", "SETTINGS clause"),
    ("SELECT 1 FORMAT JSON SETTINGS max_result_rows = 0", "SETTINGS clause"),
    ("KILL QUERY WHERE 1", "KILL statements"),
    ("kill /* x */ query where 1 sync", "KILL statements"),
    ("SYSTEM STOP MERGES", "SYSTEM statements"),
    ("USE system", "USE statements"),
    (
        "SELECT 1 PARALLEL WITH INSERT INTO FUNCTION file('{target}', 'RawBLOB') SELECT 'x'",
        "ParallelWithQuery statements",
    ),
    ("SHOW GRANTS", "ShowGrantsQuery statements"),
    ("SELECT 1 AS `x\n Function file`", "quoted identifier"),
]
#: Two statements: the parser refuses them before anything runs.
MULTI_STATEMENTS = [
    "SELECT 1; SELECT 1 INTO OUTFILE '{target}'",
    "SELECT 1 -- ;\n; INSERT INTO FUNCTION file('{target}', 'RawBLOB') SELECT 'x'",
    "SELECT ';'; SELECT file('{canary}')",
]
ALLOWED = [
    (
        "SELECT 'INTO OUTFILE' AS s, 'SETTINGS readonly = 0' AS t FORMAT JSONEachRow",
        b'{"s":"INTO OUTFILE","t":"SETTINGS readonly = 0"}\n',
    ),
    (
        "SELECT 1 AS `into outfile` /* INTO OUTFILE 'x' */ -- SETTINGS readonly = 0\nFORMAT JSONEachRow",
        b'{"into outfile":1}\n',
    ),
    ("select $$file('x')$$ AS s format JSONEachRow;", b'{"s":"file(\'x\')"}\n'),
    ("SELECT value FROM system.settings WHERE name = 'readonly'", b"1\n"),
    ("SELECT sum(number) FROM numbers(10)", b"45\n"),
    ("SELECT * FROM values('x UInt8', 1, 2) ORDER BY x", b"1\n2\n"),
]


def billing_query() -> str:
    section = docs.section("Billing queries")
    return re.search(r"```sql\n(.*?)```", section, re.DOTALL).group(1)  # type: ignore[union-attr]


#: Analysts' ordinary queries over ringback's tables and views, the docs' among them.
ANALYST_QUERIES = [
    "SELECT event_type, sid, status, vendor_code, to_number, occurred_at FROM ringback.events_dedup",
    "SELECT * FROM ringback.dead_letters FORMAT JSONEachRow",
    "SELECT count() FROM ringback.events_dedup",
    billing_query(),
    (
        "WITH stored AS (SELECT route, count() AS n FROM ringback.event_copies FINAL GROUP BY route) "
        "SELECT l.route, sum(l.count) AS counted, any(s.n) AS stored FROM ringback.ledger AS l FINAL LEFT JOIN stored "
        "AS s ON s.route = l.route "
        "WHERE l.stage IN (SELECT DISTINCT stage FROM ringback.ledger) GROUP BY l.route ORDER BY l.route FORMAT "
        "JSONEachRow"
    ),
    (
        "SELECT route, failure_type, count() FROM ringback.dead_letters GROUP BY route, failure_type UNION ALL SELECT "
        "'all', '', count() FROM ringback.dead_letters"
    ),
    "SHOW TABLES FROM ringback",
    "DESCRIBE ringback.events",
    "DESCRIBE TABLE ringback.events_dedup FORMAT JSONEachRow",
    "EXISTS ringback.events",
    "SHOW CREATE TABLE ringback.events",
    "EXPLAIN SELECT count() FROM ringback.events_dedup WHERE app_id = 'x'",
    "EXPLAIN PLAN actions = 1 SELECT count() FROM ringback.event_copies FINAL",
    "EXPLAIN SYNTAX SELECT * FROM ringback.events_dedup LIMIT 1",
    *cookbook_queries(),
]


def expand(query: str, canary: Path, target: Path) -> str:
    return query.replace("{canary}", str(canary)).replace("{target}", str(target))


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "canary.txt"
    path.write_text(f"canary-{uuid.uuid4().hex}\n")
    return path


@pytest.fixture(scope="module")
def store(chdb_dir: Path) -> Iterator[str]:
    """The shared embedded store with ringback's tables."""
    dsn = f"chdb://{chdb_dir}"
    writer = clickhouse.connect(dsn)
    clickhouse.apply_ddl(writer, REPO_ROOT / "schemas")
    yield dsn
    writer.close()


@pytest.fixture(scope="module")
def reader(store: str) -> Iterator[Client]:
    client = clickhouse.connect_reader(store, TEST_LIMITS)
    yield client
    client.close()


@pytest.mark.parametrize(("escape", "refused"), ESCAPES)
def test_every_escape_is_refused_before_it_runs(
    reader: Client, canary: Path, tmp_path: Path, escape: str, refused: str
) -> None:
    target = tmp_path / "written"
    with pytest.raises(QueryRefused, match="readonly") as caught:
        clickhouse.run_read_only(reader, expand(escape, canary, target), "TabSeparated")
    assert refused in str(caught.value) and "\n" not in str(caught.value)
    assert not target.exists()


@pytest.mark.parametrize("statements", MULTI_STATEMENTS)
def test_two_statements_are_refused_by_the_parser(
    reader: Client, canary: Path, tmp_path: Path, statements: str
) -> None:
    target = tmp_path / "written"
    with pytest.raises(QueryNotParsed, match="Multi-statements are not allowed"):
        clickhouse.run_read_only(reader, expand(statements, canary, target), "TabSeparated")
    assert not target.exists()


def test_a_default_format_cannot_carry_a_second_statement(reader: Client, tmp_path: Path) -> None:
    target = tmp_path / "written"
    with pytest.raises(QueryRefused, match="not a format name"):
        clickhouse.run_read_only(reader, "SELECT 1", f"TSV; SELECT 1 INTO OUTFILE '{target}'")
    assert not target.exists()


@pytest.mark.parametrize(("query", "expected"), ALLOWED)
def test_keywords_in_strings_comments_and_names_stay_allowed(reader: Client, query: str, expected: bytes) -> None:
    assert clickhouse.run_read_only(reader, query, "TabSeparated") == expected


@pytest.mark.parametrize("query", ANALYST_QUERIES)
def test_analyst_queries_over_ringback_tables_keep_working(reader: Client, query: str) -> None:
    """The guard does not refuse what analysts ask on a store opened directly (this store is empty: the
    answers are checked over a running pipeline's store below, and the cookbook's in test_views.py)."""
    clickhouse.run_read_only(reader, query, "PrettyCompact")  # refused or failing: raises


def test_the_engine_itself_refuses_writes_on_the_reader_session(reader: Client, tmp_path: Path) -> None:
    """Behind the guard: the reader's session is readonly=1 with the limits, and nothing changes that."""
    values = reader.query(
        "SELECT getSetting('readonly'), getSetting('max_execution_time'), getSetting('max_result_rows'), "
        "getSetting('max_threads')"
    ).result_rows
    assert values == [(1, TEST_LIMITS.timeout_s, TEST_LIMITS.max_result_rows, TEST_LIMITS.max_threads)]
    for statement in (
        "CREATE TABLE ringback.escape (x UInt8) ENGINE = Memory",
        "SET readonly = 0",
        f"INSERT INTO FUNCTION file('{tmp_path / 'w'}', 'RawBLOB') SELECT 'x'",
    ):
        with pytest.raises(Exception, match=r"readonly|READONLY"):
            reader.command(statement)
    assert not (tmp_path / "w").exists()


def test_a_query_over_the_time_limit_is_stopped_by_the_engine(reader: Client) -> None:
    started = time.monotonic()
    with pytest.raises(Exception, match="TIMEOUT_EXCEEDED"):
        clickhouse.run_read_only(reader, ENDLESS_QUERY, "TabSeparated")
    assert time.monotonic() - started < TEST_LIMITS.timeout_s * 10
    assert clickhouse.run_read_only(reader, "SELECT 1", "TabSeparated") == b"1\n"  # the session is still usable


@pytest.mark.parametrize(
    "query",
    [
        "SELECT number FROM numbers(100000)",  # rows
        "SELECT repeat(toString(number), 1000) FROM numbers(900)",  # bytes
    ],
)
def test_a_result_over_the_size_limit_is_refused_by_the_engine(reader: Client, query: str) -> None:
    with pytest.raises(Exception, match="TOO_MANY_ROWS_OR_BYTES"):
        clickhouse.run_read_only(reader, query, "TabSeparated")


# --- analysts' queries and ingestion ---


async def test_a_batch_is_stored_while_a_long_analyst_query_runs(
    broker: EmbeddedBroker, store: str, make_settings: Callable[..., Settings]
) -> None:
    query_limit_s = 4.0
    settings = make_settings(kafka_bootstrap=broker.bootstrap, clickhouse_dsn=store, query_timeout_s=query_limit_s)
    await kafka.ensure_topics(settings)
    sink = Sink(settings)
    await sink.start()
    try:
        query_started = time.monotonic()
        long_query = asyncio.create_task(sink.query(ENDLESS_QUERY, "TabSeparated"))
        await asyncio.sleep(0.5)
        assert not long_query.done()

        event_id = f"{settings.topic_raw}-during-query"
        await produce(
            settings.kafka_bootstrap, settings.topic_normalized, [(None, sink.codec.encode(_event(sink, event_id)), [])]
        )
        while sink.step_ is None or sink.step_.batch.event_count < 1:
            await sink.step()
        await sink.flush()
        assert not long_query.done(), "the batch had to wait for the analyst's query"
        count = await sink.on_db_thread(
            lambda: sink.client.query(f"SELECT count() FROM ringback.events WHERE event_id = '{event_id}'").result_rows
        )
        assert count == [(1,)]

        with pytest.raises(Exception, match="TIMEOUT_EXCEEDED"):
            await long_query
        assert time.monotonic() - query_started >= query_limit_s * 0.9  # the query really ran that long
    finally:
        await sink.stop()


def _event(sink: Sink, event_id: str) -> dict:
    event = sink.codec.blank_event()
    event.update(
        event_id=event_id,
        event_type="sms.delivery_report",
        source="tencent.sms_status",
        route="tencent/sms-status",
        ingest_id=event_id,
        received_at=datetime.now(UTC),
        status="delivered",
        normalizer_version="t",
    )
    return event


# --- through `ringback sql`: a running sink's endpoint, then the store opened directly ---

#: A representative few of the escapes above, as an analyst would type them.
CLI_ESCAPES = [
    "SELECT * FROM file('{canary}', 'RawBLOB')",
    "SELECT file('{canary}')",
    "SELECT 'x' INTO OUTFILE '{target}' APPEND FORMAT RawBLOB",
    "SELECT 1 -- c\nINTO OUTFILE '{target}'",
    "INSERT INTO FUNCTION file('{target}', 'RawBLOB') SELECT 'x'",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'RawBLOB')",
    "KILL QUERY WHERE 1",
    "SELECT 1; SELECT 1 INTO OUTFILE '{target}'",
]
PIPELINE_LIMITS = ["--query-timeout-s", "3", "--query-max-result-rows", "1000"]


def sql(data_dir: Path, query: str, *flags: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ringback("sql", "--data-dir", str(data_dir), *flags, query), input=stdin, capture_output=True, timeout=120
    )


def shared_with_others(root: Path) -> list[str]:
    """Paths under ``root`` (itself included) that group or others may read, write or enter."""
    return [
        f"{path} {stat.filemode(path.lstat().st_mode)}"
        for path in [root, *root.rglob("*")]
        if not path.is_symlink() and path.lstat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    ]


def assert_escapes_refused(data_dir: Path, canary: Path, target: Path) -> None:
    secret = canary.read_bytes().strip()
    for escape in CLI_ESCAPES:
        done = sql(data_dir, expand(escape, canary, target))
        assert done.returncode == 1, (escape, done.stdout, done.stderr)
        assert b"query refused (readonly)" in done.stderr or b"Multi-statements are not allowed" in done.stderr, (
            done.stderr
        )
        assert secret not in done.stdout + done.stderr
        assert not target.exists(), escape


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    running = Pipeline(tmp_path_factory.mktemp("sql-readonly") / "data", extra_args=PIPELINE_LIMITS).start()
    yield running
    running.stop()


def test_a_fresh_data_dir_is_private_to_its_owner(pipeline: Pipeline) -> None:
    assert shared_with_others(pipeline.data_dir) == []


def test_escapes_through_the_running_sink_are_refused(pipeline: Pipeline, canary: Path, tmp_path: Path) -> None:
    assert_escapes_refused(pipeline.data_dir, canary, tmp_path / "written")


def test_analyst_queries_through_the_running_sink(pipeline: Pipeline) -> None:
    tag = uuid.uuid4().hex[:8]
    body = (
        '[{"user_receive_time":"2026-11-21 '
        f'09:30:15","nationcode":"86","mobile":"13800138000","report_status":"SUCCESS","errmsg":"DELIVRD","sid":"{tag}"}}]'
    )
    assert post(pipeline.edge_url + SMS_ROUTE, body.encode())[0] == 200
    deadline = time.monotonic() + 60
    while (
        sql(pipeline.data_dir, f"SELECT sid FROM ringback.events_dedup WHERE sid = '{tag}'").stdout
        != f"{tag}\n".encode()
    ):
        assert time.monotonic() < deadline, "the callback was never stored"
        time.sleep(0.5)
    # What each answers over this pipeline's store (one SMS report, nothing dead-lettered); the cookbook's
    # answers are checked over known events in test_views.py.
    stored_report = f"sms.delivery_report\t{tag}\tdelivered\tDELIVRD\t13800138000\t2026-11-21 01:30:15.000000\n"
    expected = {
        ANALYST_QUERIES[0]: stored_report,
        ANALYST_QUERIES[1]: "",
        ANALYST_QUERIES[2]: "1\n",
        ANALYST_QUERIES[3]: "2026-11-21\ttencent.sms_status\t1\t",
        ANALYST_QUERIES[5]: "all\t\t0\n",
        ANALYST_QUERIES[6]: "events_dedup\n",
        ANALYST_QUERIES[7]: "event_id\tString",
        ANALYST_QUERIES[8]: '{"name":"event_id","type":"String"',
        ANALYST_QUERIES[9]: "1\n",
        ANALYST_QUERIES[10]: "CREATE VIEW ringback.events\\n(",  # TabSeparated escapes the line ends
        ANALYST_QUERIES[11]: "ReadFromMergeTree",
        ANALYST_QUERIES[12]: "ReadFromMergeTree",
        ANALYST_QUERIES[13]: "SELECT",
    }
    exact = {ANALYST_QUERIES[i] for i in (0, 1, 2, 9)}
    for query in ANALYST_QUERIES:
        done = sql(pipeline.data_dir, query)
        assert done.returncode == 0, (query, done.stderr)
        answer = done.stdout.decode()
        if query in exact:
            assert answer == expected[query], (query, answer)
        elif query in expected:
            assert expected[query] in answer, (query, answer)
    piped = sql(
        pipeline.data_dir,
        "-",
        stdin=f"SELECT count() AS n FROM ringback.events_dedup WHERE sid = '{tag}' FORMAT JSONEachRow".encode(),
    )
    assert piped.returncode == 0 and piped.stdout == b'{"n":1}\n', piped.stderr
    reconcile = subprocess.run(
        ringback("reconcile", "--data-dir", str(pipeline.data_dir)), capture_output=True, timeout=120
    )
    assert reconcile.returncode == 0 and b"tencent/sms-status" in reconcile.stdout, reconcile.stderr


def listening_addresses(port: int) -> set[str]:
    """The local addresses sockets listen on at ``port`` (IPv4 and IPv6), from /proc/net."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address if len(address) == width else f"?{address}")
    return found


def test_the_query_endpoint_listens_on_loopback_only_and_wants_its_token(pipeline: Pipeline) -> None:
    endpoint = json.loads((pipeline.data_dir / "run" / "sink-query.json").read_text())
    url, token = endpoint["url"], endpoint["token"]
    port = int(url.split(":")[2].split("/")[0])
    assert url.startswith("http://127.0.0.1:")
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and no other address (no 0.0.0.0, no ::)
    query = json.dumps({"query": "SELECT 1"}).encode()
    for headers in ({}, {"X-Ringback-Token": "not-the-token"}, {"X-Ringback-Token": token[:-1]}):
        request = urllib.request.Request(url, data=query, headers=headers, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 403, headers
    request = urllib.request.Request(url, data=query, headers={"X-Ringback-Token": token}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.read() == b"1\n"


def test_limits_through_the_running_sink_come_back_as_errors(pipeline: Pipeline) -> None:
    started = time.monotonic()
    slow = sql(pipeline.data_dir, ENDLESS_QUERY)
    assert slow.returncode == 1 and b"TIMEOUT_EXCEEDED" in slow.stderr, slow.stderr
    assert time.monotonic() - started < 60
    large = sql(pipeline.data_dir, "SELECT number FROM numbers(100000)")
    assert large.returncode == 1 and b"TOO_MANY_ROWS_OR_BYTES" in large.stderr, large.stderr
    assert sql(pipeline.data_dir, "SELECT 1").stdout == b"1\n"  # and the endpoint goes on answering


@pytest.fixture
def stopped(tmp_path: Path) -> Path:
    """A pipeline of its own that stored a callback and was stopped: its data dir."""
    running = Pipeline(tmp_path / "data", extra_args=PIPELINE_LIMITS).start()
    try:
        body = (
            b'[{"user_receive_time":"2026-11-21 09:30:15","nationcode":"86","mobile":"13800138000",'
            b'"report_status":"SUCCESS","errmsg":"DELIVRD","sid":"s-1"}]'
        )
        assert post(running.edge_url + SMS_ROUTE, body)[0] == 200
        deadline = time.monotonic() + 60
        while sql(running.data_dir, "SELECT count() FROM ringback.events_dedup").stdout != b"1\n":
            assert time.monotonic() < deadline, "the callback was never stored"
            time.sleep(0.5)
    finally:
        assert running.stop() == 0, running.log()
    return running.data_dir


def test_the_stopped_pipelines_store_opened_directly(stopped: Path, canary: Path, tmp_path: Path) -> None:
    """`ringback sql` opens the store of a stopped pipeline itself."""
    store = stopped / "clickhouse"
    for directory in (stopped, store):
        directory.chmod(0o755)  # as an earlier version left them
    assert_escapes_refused(stopped, canary, tmp_path / "written")
    assert sql(stopped, "SELECT count() FROM ringback.events_dedup").stdout == b"1\n"
    slow = sql(stopped, ENDLESS_QUERY, "--query-timeout-s", "1")
    assert slow.returncode == 1 and b"TIMEOUT_EXCEEDED" in slow.stderr, slow.stderr
    assert shared_with_others(stopped) == []
