"""ClickHouse's HTTP interface of a running `ringback run`, driven by the real clickhouse-connect client
and plain HTTP requests, as two analysts: one of every tenant and one of a single tenant, who sees only
that tenant's rows in every table, view, saved view, join and subquery."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from ringback.runtime.ports import free_port
from tests.pipeline import Pipeline, open_tenants_file, post, ringback, wait_for_rows, wait_for_run_file

pytestmark = pytest.mark.integration

TENANT_SECRET = "tenant-secret-5b1f0c93a7"
ACME, GLOBEX = "acme", "globex"
FINANCE_PASSWORD = "finance-password-8d7e6f5a4b"
ACME_PASSWORD = "acme-ops-password-1c2d3e4f5a"
TENANTS_FILE = open_tenants_file((ACME, GLOBEX), TENANT_SECRET)
ANALYSTS_FILE = f"""
[[analysts]]
name = "finance"
password = "{FINANCE_PASSWORD}"
tenants = ["*"]
[[analysts]]
name = "acme-ops"
password_sha256 = "{hashlib.sha256(ACME_PASSWORD.encode()).hexdigest()}"
tenants = ["{ACME}"]
"""
#: A saved view of the analysts' own.
SAVED_VIEW = "SELECT tenant, count() AS events, sum(charge) AS charge FROM ringback.events GROUP BY tenant"
#: Events each tenant sends ("" = the tenant-less routes), and their charges.
CHARGES = {ACME: ["1.10", "2.20"], GLOBEX: ["0.50", "0.60", "0.70"], "": ["9.00"]}
TOTAL_EVENTS = sum(len(charges) for charges in CHARGES.values())
WAIT_S = 60.0
OTHERS = f"tenant != '{ACME}'"


def cdr(request_id: str, charge: str) -> bytes:
    record = {
        "requestid": request_id,
        "appid": "app-1",
        "fid": "2",
        "tel": "13800138000",
        "stime": "2026-11-21 11:19:36.000",
        "etime": "2026-11-21 11:19:58.000",
        "duration": "22",
        "oriamount": charge,
    }
    return json.dumps({"cdr": [record]}).encode()


@dataclass
class Running:
    pipeline: Pipeline
    url: str
    analysts_file: Path

    @property
    def port(self) -> int:
        return int(urllib.parse.urlsplit(self.url).port or 0)

    def client(self, user: str, password: str) -> Client:
        return clickhouse_connect.get_client(host="127.0.0.1", port=self.port, username=user, password=password)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("sqlhttp")
    (home / "tenants.toml").write_text(TENANTS_FILE)
    (home / "analysts.toml").write_text(ANALYSTS_FILE)
    views = home / "views"
    views.mkdir()
    (views / "tenant_totals.sql").write_text(SAVED_VIEW)
    pipeline = Pipeline(
        home / "data",
        extra_args=[
            "--tenants-file",
            str(home / "tenants.toml"),
            "--analysts-file",
            str(home / "analysts.toml"),
            "--analyst-views-dir",
            str(views),
            "--sql-http-port",
            str(free_port()),
        ],
    ).start()
    try:
        for tenant, charges in CHARGES.items():
            for index, charge in enumerate(charges):
                base = f"{pipeline.edge_url}/t/{tenant}/{TENANT_SECRET}" if tenant else pipeline.edge_url
                body = cdr(f"{tenant or 'anon'}-{index}", charge)
                assert post(f"{base}/callbacks/cdr-push", body)[0] == 200
        rows = wait_for_rows(home / "data", "SELECT event_id FROM ringback.events", TOTAL_EVENTS, WAIT_S)
        assert len(rows) == TOTAL_EVENTS
        url = wait_for_run_file(pipeline.data_dir, "sql-http", pipeline.process)["url"]
        yield Running(pipeline, url, home / "analysts.toml")
    finally:
        pipeline.stop()


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def http_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def query_url(url: str, query: str, **params: str) -> str:
    return url + "?" + urllib.parse.urlencode({"query": query, **params})


def test_curl_like_get_answers_one_and_ping_ok(running: Running) -> None:
    assert http_get(running.url + "ping")[:2] == (200, b"Ok.\n")
    status, body, _ = http_get(running.url + "?query=SELECT%201", basic("finance", FINANCE_PASSWORD))
    assert (status, body) == (200, b"1\n")
    headers = {"X-ClickHouse-User": "acme-ops", "X-ClickHouse-Key": ACME_PASSWORD}
    assert http_get(running.url + "?query=SELECT%202", headers)[:2] == (200, b"2\n")


def test_wrong_password_and_no_account_refused_in_clickhouse_shape(running: Running) -> None:
    for headers in ({}, basic("finance", "not-the-password-at-all"), basic("nobody", FINANCE_PASSWORD)):
        status, body, reply_headers = http_get(running.url + "?query=SELECT%201", headers)
        assert status == 401
        assert body.startswith(b"Code: 516. DB::Exception: ")
        assert reply_headers["X-ClickHouse-Exception-Code"] == "516"
    with pytest.raises(DatabaseError, match="516"):
        running.client("finance", "not-the-password-at-all")


def test_refusals_and_errors_come_in_clickhouse_shape(running: Running) -> None:
    auth = basic("finance", FINANCE_PASSWORD)
    quoted = urllib.parse.quote("INSERT INTO ringback.ledger SELECT * FROM ringback.ledger")
    status, body, headers = http_get(running.url + f"?query={quoted}", auth)
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "164")
    assert body.startswith(b"Code: 164. DB::Exception: query refused (readonly)")
    status, body, headers = http_get(running.url + "?query=SELECT%201&allow_ddl=1", auth)
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "164")
    assert b"allow_ddl" in body
    assert http_get(running.url + "?query=SELECT%201&max_execution_time=100000", auth)[:2] == (200, b"1\n")
    status, body, headers = http_get(running.url + "?query=SELECT%20*%20FROM%20ringback.nope", auth)
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "60")


def test_clickhouse_connect_every_tenant_exact(running: Running) -> None:
    client = running.client("finance", FINANCE_PASSWORD)
    rows = client.query("SELECT tenant, count(), sum(charge) FROM ringback.events GROUP BY tenant ORDER BY tenant")
    expected = [(tenant, len(charges), sum_of(charges)) for tenant, charges in sorted(CHARGES.items())]
    assert rows.result_rows == expected
    assert client.command("SELECT count() FROM ringback.events") == TOTAL_EVENTS


def test_clickhouse_connect_one_tenant_sees_only_its_rows(running: Running) -> None:
    client = running.client("acme-ops", ACME_PASSWORD)
    rows = client.query("SELECT tenant, count(), sum(charge) FROM ringback.events GROUP BY tenant ORDER BY tenant")
    assert rows.result_rows == [(ACME, len(CHARGES[ACME]), sum_of(CHARGES[ACME]))]
    assert client.command("SELECT count() FROM ringback.events") == len(CHARGES[ACME])
    saved = client.query("SELECT tenant, events FROM analyst.tenant_totals").result_rows
    assert saved == [(ACME, len(CHARGES[ACME]))]


def test_dataframes_and_arrow(running: Running) -> None:
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    client = running.client("acme-ops", ACME_PASSWORD)
    frame = client.query_df("SELECT tenant, charge FROM ringback.events ORDER BY charge")
    assert list(frame["tenant"]) == [ACME] * len(CHARGES[ACME])
    table = client.query_arrow("SELECT tenant, charge FROM ringback.events ORDER BY charge")
    assert table.column("charge").to_pylist() == [Decimal(charge) for charge in CHARGES[ACME]]
    assert table.column("tenant").to_pylist() == [ACME] * len(CHARGES[ACME])


def sum_of(charges: list[str]) -> Decimal:
    return sum((Decimal(charge) for charge in charges), Decimal(0))


def tables_with_tenant(client: Client) -> list[str]:
    rows = client.query(
        "SELECT DISTINCT database, table FROM system.columns "
        "WHERE database IN ('ringback', 'analyst') AND name = 'tenant' ORDER BY database, table"
    ).result_rows
    return [f"{database}.{table}" for database, table in rows]


def test_no_table_view_join_or_subquery_shows_another_tenants_rows(running: Running) -> None:
    finance = running.client("finance", FINANCE_PASSWORD)
    acme = running.client("acme-ops", ACME_PASSWORD)
    every = tables_with_tenant(finance)
    for must_be_there in ("ringback.events", "ringback.event_copies", "ringback.ledger", "analyst.tenant_totals"):
        assert must_be_there in every
    others = 0
    for table in every:
        # Other tenants' rows exist for finance in the tables that hold events ...
        others += int(finance.command(f"SELECT count() FROM {table} WHERE tenant != '{ACME}'"))
        # ... and never for acme-ops, whichever way it reads them.
        for query in (
            f"SELECT count() FROM {table} WHERE tenant != '{ACME}'",
            f"SELECT count() FROM (SELECT * FROM {table}) WHERE tenant != '{ACME}'",
            f"WITH t AS (SELECT tenant FROM {table}) SELECT count() FROM t WHERE tenant != '{ACME}'",
            f"SELECT count() FROM {table} AS a JOIN {table} AS b ON a.tenant = b.tenant WHERE b.tenant != '{ACME}'",
            f"SELECT count() FROM view(SELECT tenant FROM {table}) WHERE tenant != '{ACME}'",
            f"SELECT count() FROM (SELECT tenant FROM {table} UNION ALL SELECT tenant FROM {table}) WHERE {OTHERS}",
            f"SELECT count() FROM numbers(1) WHERE 0 < (SELECT count() FROM {table} WHERE tenant != '{ACME}')",
        ):
            assert acme.command(query) == 0, query
        acme_count = finance.command(f"SELECT count() FROM {table} WHERE tenant = '{ACME}'")
        assert acme.command(f"SELECT count() FROM {table}") == acme_count, table
    assert others > 0


def test_one_tenant_cannot_count_the_others_through_system_tables(running: Running) -> None:
    acme = running.client("acme-ops", ACME_PASSWORD)
    for query in (
        "SELECT total_rows FROM system.tables WHERE database = 'ringback'",
        "SELECT * FROM system.tables",
        "SELECT sum(data_uncompressed_bytes) FROM system.columns",
        "SELECT table_rows FROM information_schema.tables",
        "EXPLAIN ESTIMATE SELECT * FROM ringback.event_copies",
    ):
        with pytest.raises(DatabaseError, match="164"):
            acme.query(query)
    names = acme.query("SELECT name FROM system.tables WHERE database = 'ringback' AND name = 'events'").result_rows
    assert names == [("events",)]


def test_every_query_logged_with_the_analyst_never_the_password(running: Running) -> None:
    marker = f"marker_{time.time_ns()}"
    running.client("acme-ops", ACME_PASSWORD).command(f"SELECT '{marker}'")
    deadline = time.monotonic() + WAIT_S
    while marker not in running.pipeline.log():
        assert time.monotonic() < deadline, "the query was not logged"
        time.sleep(0.2)
    line = next(line for line in running.pipeline.log().splitlines() if marker in line)
    assert "acme-ops" in line
    log = running.pipeline.log()
    assert ACME_PASSWORD not in log and FINANCE_PASSWORD not in log


def test_the_data_dictionary_shows_through_describe_and_system_columns(running: Running) -> None:
    client = running.client("acme-ops", ACME_PASSWORD)
    described = {row[0]: row[4] for row in client.query("DESCRIBE ringback.events").result_rows}
    assert described["charge"] == "Charge as an exact decimal."
    empty = client.command("SELECT count() FROM system.columns WHERE database = 'ringback' AND comment = ''")
    assert empty == 0


def test_output_settings_as_a_settings_clause_or_url_parameter(running: Running) -> None:
    client = running.client("acme-ops", ACME_PASSWORD)
    shown = client.query(
        "SELECT toString(toDateTime(0)), tenant FROM ringback.events SETTINGS session_timezone = 'Asia/Shanghai'"
    ).result_rows
    assert shown == [("1970-01-01 08:00:00", ACME)] * len(CHARGES[ACME])
    query = urllib.parse.quote("SELECT toString(toDateTime(0))")
    headers = {"X-ClickHouse-User": "acme-ops", "X-ClickHouse-Key": ACME_PASSWORD}
    status, body, _ = http_get(f"{running.url}?query={query}&session_timezone=Asia/Shanghai", headers)
    assert (status, body) == (200, b"1970-01-01 08:00:00\n")


def test_tables_without_a_tenant_column_show_a_tenant_limited_account_no_row(running: Running) -> None:
    finance = running.client("finance", FINANCE_PASSWORD)
    acme = running.client("acme-ops", ACME_PASSWORD)
    without = finance.query(
        "SELECT database, name FROM system.tables WHERE database IN ('ringback', 'analyst') AND engine != 'View' "
        "AND (database, name) NOT IN (SELECT database, table FROM system.columns WHERE name = 'tenant')"
    ).result_rows
    for database, table in without:
        assert acme.command(f"SELECT count() FROM {database}.{table}") == 0, table


#: The known events' vendor end time: 11:19:58 China time, 03:19:58 UTC.
KNOWN_EVENT = "SELECT timezone() AS zone, toString(toTimeZone(event_time, timezone())) AS shown, toString(event_time) "
KNOWN_EVENT += f"AS stored FROM ringback.events WHERE request_id = '{ACME}-0' FORMAT JSONEachRow"


def test_sql_timezone_shows_a_known_event_in_that_zone(running: Running) -> None:
    def shown(*flags: str) -> dict[str, str]:
        data_dir = str(running.pipeline.data_dir)
        done = subprocess.run(
            ringback("sql", "--data-dir", data_dir, *flags, KNOWN_EVENT), capture_output=True, timeout=60
        )
        assert done.returncode == 0, done.stderr.decode()
        return dict(json.loads(done.stdout))

    stored = "2026-11-21 03:19:58.000000"  # a column that names its zone (UTC) keeps it
    assert {key: value for key, value in shown().items() if key != "zone"} == {"shown": stored, "stored": stored}
    shanghai = {"zone": "Asia/Shanghai", "shown": "2026-11-21 11:19:58.000000", "stored": stored}
    assert shown("--timezone", "Asia/Shanghai") == shanghai


def test_default_format_parameter_and_a_format_clause_that_wins_over_it(running: Running) -> None:
    headers = {"X-ClickHouse-User": "acme-ops", "X-ClickHouse-Key": ACME_PASSWORD}
    per_tenant = "SELECT tenant, count() AS events FROM ringback.events GROUP BY tenant ORDER BY tenant"
    url = query_url(running.url, per_tenant, default_format="JSONEachRow")
    assert http_get(url, headers)[:2] == (200, b'{"tenant":"acme","events":2}\n')
    url = query_url(running.url, per_tenant + " FORMAT CSVWithNames", default_format="JSONEachRow")
    assert http_get(url, headers)[:2] == (200, b'"tenant","events"\n"acme",2\n')
    assert http_get(query_url(running.url, per_tenant), headers)[:2] == (200, b"acme\t2\n")  # TabSeparated


def test_post_with_the_query_in_the_body_or_split_between_url_and_body(running: Running) -> None:
    finance = basic("finance", FINANCE_PASSWORD)
    charges = b"SELECT tenant, toString(sum(charge)) FROM ringback.events GROUP BY tenant ORDER BY tenant"
    assert http_post(running.url, charges, finance) == (200, b"\t9\nacme\t3.3\nglobex\t1.8\n")
    # ClickHouse appends the body to the URL's query.
    split = query_url(running.url, "SELECT count() FROM ringback.events")
    assert http_post(split, f"WHERE tenant = '{GLOBEX}'".encode(), finance) == (200, b"3\n")
    assert http_post(split, f"WHERE tenant = '{GLOBEX}'".encode(), basic("acme-ops", ACME_PASSWORD)) == (200, b"0\n")


def test_database_parameter_default_resolves_unqualified_names_and_another_is_refused(running: Running) -> None:
    finance = basic("finance", FINANCE_PASSWORD)
    qualified = query_url(running.url, "SELECT count() FROM ringback.events", database="default")
    assert http_get(qualified, finance)[:2] == (200, f"{TOTAL_EVENTS}\n".encode())
    status, body, headers = http_get(query_url(running.url, "SELECT count() FROM events", database="default"), finance)
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "60")
    assert b"Unknown table expression identifier 'events'" in body  # looked up in default, not in ringback
    status, body, headers = http_get(query_url(running.url, "SELECT count() FROM events", database="ringback"), finance)
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "81")
    assert b"name tables with their database" in body


def test_an_analyst_added_to_the_file_is_admitted_and_one_removed_refused_without_a_restart(
    running: Running,
) -> None:
    original = running.analysts_file.read_text()
    newcomer = "newcomer-password-9a8b7c6d5e"
    ping_as = query_url(running.url, "SELECT 1")

    def status_becomes(headers: dict[str, str], wanted: int) -> int:
        deadline = time.monotonic() + WAIT_S
        while (status := http_get(ping_as, headers)[0]) != wanted and time.monotonic() < deadline:
            time.sleep(0.2)
        return status

    try:
        assert http_get(ping_as, basic("newcomer", newcomer))[0] == 401
        added = f'{original}\n[[analysts]]\nname = "newcomer"\npassword = "{newcomer}"\ntenants = ["{GLOBEX}"]\n'
        running.analysts_file.write_text(added)
        assert status_becomes(basic("newcomer", newcomer), 200) == 200
        assert http_get(query_url(running.url, "SELECT count() FROM ringback.events"), basic("newcomer", newcomer))[
            :2
        ] == (200, b"3\n")
        running.analysts_file.write_text(original.replace('name = "acme-ops"', 'name = "acme-gone"'))
        assert status_becomes(basic("acme-ops", ACME_PASSWORD), 401) == 401
        assert http_get(ping_as, basic("newcomer", newcomer))[0] == 401
    finally:
        running.analysts_file.write_text(original)
    assert status_becomes(basic("acme-ops", ACME_PASSWORD), 200) == 200
