"""Tenants on a running `ringback run`: who may write billing data, and whose it is.

The pipeline runs with a tenants file (anonymous callbacks refused) and trusts 127.0.0.1 as a load
balancer, so tests can speak for other client addresses through X-Forwarded-For.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from ringback.routes import ROUTES, TENCENT
from tests.golden import cases
from tests.kafka_helpers import read_topic
from tests.pipeline import Pipeline, ringback, sql_rows, wait_for_rows, wait_until_caught_up

pytestmark = pytest.mark.integration
SECRETS = {"acme": "acme-secret-4f9a2c71d0", "beta": "beta-secret-8e1b5d3a6c", "slow": "slow-secret-2d7f9e0b4a"}
ACME_APP_ID = "1400123456"
BETA_NETWORK_ADDRESS = "203.0.113.5"
TENANTS_FILE = f"""
allow_anonymous = false
[[tenants]]
id = "acme"
secret = "{SECRETS["acme"]}"
app_id = "{ACME_APP_ID}"
[[tenants]]
id = "beta"
secret = "{SECRETS["beta"]}"
allow_ips = ["203.0.113.0/24"]
[[tenants]]
id = "slow"
secret = "{SECRETS["slow"]}"
rate_limit_per_s = 2
"""


def _bodies_with_events() -> dict[str, bytes]:
    """One golden body per route that normalizes to events only (no dead letter)."""
    bodies: dict[str, bytes] = {}
    for case in cases():
        outcomes = json.loads(case.expected_path.read_text())
        if case.route not in bodies and outcomes and all("event" in outcome for outcome in outcomes):
            bodies[case.route] = case.body_path.read_bytes()
    return bodies


ROUTE_BODIES = _bodies_with_events()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    home = tmp_path_factory.mktemp("tenants")
    (home / "tenants.toml").write_text(TENANTS_FILE)
    running = Pipeline(
        home / "data", extra_args=["--tenants-file", str(home / "tenants.toml"), "--trusted-proxies", "127.0.0.1/32"]
    ).start()
    yield running
    running.stop()


def post(url: str, body: bytes, forwarded_for: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json", **({"X-Forwarded-For": forwarded_for} if forwarded_for else {})}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def tenant_url(pipeline: Pipeline, tenant: str, secret: str, route: str) -> str:
    return f"{pipeline.edge_url}/t/{tenant}/{secret}/callbacks/{route}"


def cdr(tag: str, request_id: str, charge: str) -> bytes:
    return json.dumps(
        {
            "cdr": [
                {
                    "requestid": request_id,
                    "appid": f"app-{tag}",
                    "fid": "4",
                    "caller": "13810603954",
                    "called": "18810207016",
                    "callerstime": "2026-11-21 11:19:36.000",
                    "calleretime": "2026-11-21 11:20:36.000",
                    "duration": "60",
                    "oriamount": charge,
                    "stateDesc": "正常",
                }
            ]
        }
    ).encode()


def metrics_text(pipeline: Pipeline, role: str) -> str:
    url = pipeline.edge_url + "/metrics" if role == "edge" else pipeline.run_file(role)["metrics"]
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_forged_callbacks_are_refused_on_every_route_and_never_stored(pipeline: Pipeline) -> None:
    tag = uuid.uuid4().hex[:8]
    body = cdr(tag, f"{tag}-forged", "99.00")
    for route in ROUTES:
        attempts = {
            "anonymous": (f"{pipeline.edge_url}{route.path}", None, 401),
            "wrong secret": (tenant_url(pipeline, "acme", "not-the-secret-000000", route.name), None, 401),
            "unknown tenant": (tenant_url(pipeline, "nobody", SECRETS["acme"], route.name), None, 401),
            "outside allow_ips": (tenant_url(pipeline, "beta", SECRETS["beta"], route.name), "198.51.100.1", 403),
        }
        for what, (url, forwarded_for, status) in attempts.items():
            got, reply = post(url, body, forwarded_for)
            assert got == status, (route.name, what, got, reply)
            if route.reply_style == TENCENT:
                assert json.loads(reply)["result"] != 0, (route.name, what)
    good = cdr(tag, f"{tag}-good", "1.00")
    assert post(tenant_url(pipeline, "acme", SECRETS["acme"], "cdr-push"), good)[0] == 200
    wait_until_caught_up(pipeline)  # anything published would have been stored by now
    assert sql_rows(
        pipeline.data_dir, f"SELECT 1 AS one FROM ringback.events_dedup WHERE request_id = '{tag}-good'"
    ) == [{"one": 1}]
    assert sql_rows(
        pipeline.data_dir, f"SELECT count() AS n FROM ringback.events WHERE request_id = '{tag}-forged'"
    ) == [{"n": 0}]
    assert sql_rows(
        pipeline.data_dir, f"SELECT count() AS n FROM ringback.dead_letters WHERE position(body, '{tag}-forged') > 0"
    ) == [{"n": 0}]
    text = metrics_text(pipeline, "edge")
    for reason in ("anonymous_not_allowed", "wrong_secret", "unknown_tenant", "address_not_allowed"):
        assert f'reason="{reason}"' in text, reason


def test_every_route_stores_the_tenant_and_the_tenants_app_id(pipeline: Pipeline) -> None:
    for route in ROUTES:
        assert post(tenant_url(pipeline, "acme", SECRETS["acme"], route.name), ROUTE_BODIES[route.name])[0] == 200, (
            route.name
        )
    rows = wait_for_rows(
        pipeline.data_dir,
        "SELECT DISTINCT route, source, app_id FROM ringback.events_dedup WHERE tenant = 'acme'",
        len(ROUTES),
        timeout_s=90,
    )
    assert {row["route"] for row in rows} == {route.name for route in ROUTES}
    tencent = [row for row in rows if row["source"].startswith("tencent.")]
    assert tencent and all(
        row["app_id"] == ACME_APP_ID for row in tencent
    )  # Tencent pushes carry no app id of their own


def test_behind_a_trusted_proxy_the_client_address_decides_and_is_recorded(pipeline: Pipeline) -> None:
    tag = uuid.uuid4().hex[:8]
    assert (
        post(
            tenant_url(pipeline, "beta", SECRETS["beta"], "cdr-push"),
            cdr(tag, f"{tag}-via-lb", "2.00"),
            BETA_NETWORK_ADDRESS,
        )[0]
        == 200
    )
    records = asyncio.run(
        read_topic(
            pipeline.bootstrap,
            "ringback.raw.v1",
            expected=1,
            where=lambda r: f"{tag}-via-lb".encode() in (r.value or b""),
        )
    )
    (record,) = records
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["remote_addr"] == BETA_NETWORK_ADDRESS and headers["tenant"] == "beta"


def test_billing_per_tenant_is_exact_and_tenants_never_collapse(pipeline: Pipeline) -> None:
    tag = uuid.uuid4().hex[:8]
    sent = {"acme": Decimal(0), "beta": Decimal(0)}
    for i in range(20):
        for tenant, forwarded_for in (("acme", None), ("beta", BETA_NETWORK_ADDRESS)):
            charge = Decimal(f"{i + 1}.{(7 * i) % 100:02d}") + (Decimal("0.01") if tenant == "beta" else 0)
            sent[tenant] += charge
            # The same vendor request id for both tenants: their events must stay apart.
            assert (
                post(
                    tenant_url(pipeline, tenant, SECRETS[tenant], "cdr-push"),
                    cdr(tag, f"{tag}-{i}", str(charge)),
                    forwarded_for,
                )[0]
                == 200
            )
    query = (
        "SELECT tenant, count() AS calls, toString(sum(charge)) AS charge FROM ringback.events_dedup WHERE app_id = "
        f"'app-{tag}' GROUP BY tenant ORDER BY tenant"
    )

    def billed() -> dict[str, tuple[int, Decimal]]:
        return {row["tenant"]: (row["calls"], Decimal(row["charge"])) for row in sql_rows(pipeline.data_dir, query)}

    deadline = time.monotonic() + 90
    while (seen := billed()) != {tenant: (20, total) for tenant, total in sent.items()}:
        assert time.monotonic() < deadline, seen
        time.sleep(1)


#: The "slow" tenant's bucket: 2 requests a second, and rate_limit_burst_s (2 s, the default) of them at most.
SLOW_RATE_PER_S = 2
SLOW_BURST = 4


def test_rate_limits_answer_the_vendors_retryable_failure_and_store_only_what_passed(pipeline: Pipeline) -> None:
    tag = uuid.uuid4().hex[:8]
    # A bucket refills to its burst within rate_limit_burst_s: from here on it is full, whatever ran before.
    time.sleep(SLOW_BURST / SLOW_RATE_PER_S)
    started = time.monotonic()
    cdr_url = tenant_url(pipeline, "slow", SECRETS["slow"], "cdr-push")
    sms_url = tenant_url(pipeline, "slow", SECRETS["slow"], "tencent/sms-status")
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: post(cdr_url, cdr(tag, f"{tag}-{i}", "1.00"))[0], range(20)))
        tencent = list(pool.map(lambda _: post(sms_url, ROUTE_BODIES["tencent/sms-status"]), range(8)))
    elapsed = time.monotonic() - started
    accepted = statuses.count(200)
    # The full bucket, plus what refilled while the requests were sent: never more, and never fewer.
    assert SLOW_BURST <= accepted <= SLOW_BURST + math.ceil(SLOW_RATE_PER_S * elapsed), (elapsed, statuses)
    assert set(statuses) == {200, 500}, (elapsed, statuses)  # the CDR platform retries on HTTP 500 only
    refused_tencent = [reply for status, reply in tencent if status != 200]
    assert refused_tencent, (elapsed, tencent)
    assert all(status in (200, 429) for status, _ in tencent), tencent
    assert all(json.loads(reply)["result"] != 0 for reply in refused_tencent)
    wait_until_caught_up(pipeline)
    stored = sql_rows(pipeline.data_dir, f"SELECT request_id FROM ringback.events_dedup WHERE app_id = 'app-{tag}'")
    assert len(stored) == accepted
    assert 'ringback_edge_refused_total{reason="rate_limited",route="cdr-push"}' in metrics_text(pipeline, "edge")


def test_a_reload_takes_effect_without_a_restart_or_a_dropped_request(pipeline: Pipeline) -> None:
    path = Path(pipeline.extra_args[pipeline.extra_args.index("--tenants-file") + 1])
    edge_pid = int(pipeline.run_file("edge")["pid"])
    tag = uuid.uuid4().hex[:8]
    statuses: list[int] = []
    stop = threading.Event()

    def keep_sending() -> None:
        i = 0
        while not stop.is_set():
            statuses.append(
                post(tenant_url(pipeline, "acme", SECRETS["acme"], "cdr-push"), cdr(tag, f"{tag}-{i}", "1.00"))[0]
            )
            i += 1

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        new_secret = "delta-secret-6b2e9f1c0a"
        path.write_text(TENANTS_FILE + f'[[tenants]]\nid = "delta"\nsecret = "{new_secret}"\n')
        os.kill(edge_pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while post(tenant_url(pipeline, "delta", new_secret, "cdr-push"), cdr(tag, f"{tag}-delta", "1.00"))[0] != 200:
            assert time.monotonic() < deadline, "the new tenant was not taken"
            time.sleep(0.2)
        path.write_text(
            TENANTS_FILE + '[[tenants]]\nid = "broken"\nsecret = "short"\n'
        )  # refused: the tenants in force stay
        os.kill(edge_pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "tenants file refused" not in pipeline.log():
            assert time.monotonic() < deadline, "the broken tenants file was not looked at"
            time.sleep(0.1)
        assert post(tenant_url(pipeline, "delta", new_secret, "cdr-push"), cdr(tag, f"{tag}-delta-2", "1.00"))[0] == 200
    finally:
        stop.set()
        sender.join(60)
        path.write_text(TENANTS_FILE)
        os.kill(edge_pid, signal.SIGHUP)
    assert statuses and set(statuses) == {200}, statuses
    assert int(pipeline.run_file("edge")["pid"]) == edge_pid  # no restart
    assert "tenants file refused" in pipeline.log()


def test_the_secret_never_leaks(pipeline: Pipeline) -> None:
    """After good and bad traffic through every route (the tests above and more here): no topic, table,
    log line or metrics page holds any tenant's secret."""
    tag = uuid.uuid4().hex[:8]
    for route in ROUTES:
        for tenant, secret in SECRETS.items():
            post(tenant_url(pipeline, tenant, secret, route.name), ROUTE_BODIES[route.name])
            post(tenant_url(pipeline, "nobody", secret, route.name), cdr(tag, f"{tag}-x", "1"))
            post(tenant_url(pipeline, tenant, secret + "x", route.name), b"not json")
            post(tenant_url(pipeline, tenant, secret, route.name), b"not json either")  # accepted, then dead-lettered
            post(tenant_url(pipeline, tenant, secret, route.name + "/nothing-here"), b"{}")
    wait_until_caught_up(pipeline)  # everything accepted above is stored
    for table in ("events_dedup", "dead_letters"):  # the sweep below reads where a secret could have gone
        stored = sql_rows(pipeline.data_dir, f"SELECT count() > 0 AS any FROM ringback.{table} WHERE tenant = 'acme'")
        assert stored == [{"any": 1}], table
    found: list[str] = []
    secrets = [s.encode() for s in SECRETS.values()]
    for topic in (
        "ringback.raw.v1",
        "ringback.normalized.v1",
        "ringback.dlq.v1",
        "ringback.ledger.v1",
        "ringback.progress.v1",
    ):
        records = asyncio.run(read_topic(pipeline.bootstrap, topic, expected=10**9, timeout_s=5))
        assert records, f"nothing read from {topic}: the sweep would prove nothing"
        for record in records:
            blob = b"".join([record.key or b"", record.value or b"", *(k.encode() + v for k, v in record.headers)])
            found += [f"topic {topic}" for s in secrets if s in blob]
    tables = [
        row["name"]
        for row in sql_rows(
            pipeline.data_dir, "SELECT name FROM system.tables WHERE database = 'ringback' AND engine NOT LIKE '%View%'"
        )
    ]
    swept: dict[str, bytes] = {}
    for table in tables:
        done = __import__("subprocess").run(
            ringback("sql", "--data-dir", str(pipeline.data_dir), f"SELECT * FROM ringback.{table} FORMAT TSV"),
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0 and not done.stderr, (table, done.stderr.decode())
        swept[table] = done.stdout
        found += [f"table {table}" for s in secrets if s in done.stdout]
    # What the sweep read holds what was stored: a failed or empty read would have found no secret either.
    assert b"acme" in swept["event_copies"] and b"not json either" in swept["dead_letters"], sorted(swept)
    found += ["log" for s in SECRETS.values() if s in pipeline.log()]
    for role in ("edge", "normalizer", "sink"):
        found += [f"metrics of {role}" for s in SECRETS.values() if s in metrics_text(pipeline, role)]
    config = __import__("subprocess").run(
        ringback("config", "--tenants-file", pipeline.extra_args[1]), capture_output=True, timeout=60
    )
    assert config.returncode == 0 and pipeline.extra_args[1].encode() in config.stdout, config.stderr.decode()
    found += ["ringback config" for s in secrets if s in config.stdout + config.stderr]
    assert not found, found
    assert len(tables) >= 4
