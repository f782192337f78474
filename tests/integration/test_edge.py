"""The edge against the real broker: acknowledge only what the broker acknowledged."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ringback.config import Settings
from ringback.edge.app import INTAKE, create_app
from ringback.routes import HTTP_STATUS, ROUTES, TENCENT
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker
from ringback.runtime.ports import free_port
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.integration
SMS = "/callbacks/tencent/sms-status"
BODY = (
    b'[{"user_receive_time":"2015-10-17 '
    b'08:03:04","nationcode":"86","mobile":"13800138000","report_status":"SUCCESS","errmsg":"DELIVRD","description":"ok","sid":"e-1"}]'
)


async def client_for(settings: Settings) -> TestClient:
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


#: The edge's producer made to refuse what the edge accepts (the embedded broker has no message size limit
#: to set): PRODUCER_BOUND below the body bound, and a body between the two.
PRODUCER_BOUND = 100_000
UNSENDABLE = b"[" + b" " * 200_000 + b"]"


async def client_with_small_producer(settings: Settings) -> TestClient:
    """An edge whose producer refuses a message over PRODUCER_BOUND bytes."""
    from ringback.edge import publisher as publisher_module

    original = publisher_module.kafka.producer
    publisher_module.kafka.producer = lambda s, **kw: original(s, max_request_size=PRODUCER_BOUND)
    try:
        return await client_for(settings)
    finally:
        publisher_module.kafka.producer = original


@pytest.fixture
async def edge(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[TestClient, Settings]]:
    settings = make_settings(kafka_bootstrap=broker.bootstrap, max_body_bytes=4096)
    await kafka.ensure_topics(settings)
    client = await client_for(settings)
    yield client, settings
    await client.close()


async def test_callback_is_published_untouched_with_its_context(edge: tuple[TestClient, Settings]) -> None:
    client, settings = edge
    before_us = time.time_ns() // 1000
    response = await client.post(SMS, data=BODY, headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status == 200
    assert await response.read() == b'{"result":0,"errmsg":"OK"}'

    (record,) = await read_topic(settings.kafka_bootstrap, settings.topic_raw, expected=1)
    assert record.value == BODY
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["route"] == "tencent/sms-status"
    assert len(headers["ingest_id"]) == 26
    assert record.key == headers["ingest_id"].encode()
    assert before_us <= int(headers["received_at_us"]) <= time.time_ns() // 1000
    assert headers["remote_addr"] == "127.0.0.1"
    assert headers["content_type"] == "application/json; charset=utf-8"


async def test_oversized_body_is_refused_in_the_vendor_shape(edge: tuple[TestClient, Settings]) -> None:
    client, _settings = edge
    response = await client.post(SMS, data=b"[" + b" " * 5000 + b"]")
    assert response.status == 413
    reply = await response.json()
    assert reply["result"] != 0 and "4096" in reply["errmsg"]


async def test_unknown_route_and_wrong_method(edge: tuple[TestClient, Settings]) -> None:
    client, _ = edge
    assert (await client.post("/callbacks/nobody", data=b"{}")).status == 404
    assert (await client.get(SMS)).status == 405


async def test_health_ready_and_metrics(edge: tuple[TestClient, Settings]) -> None:
    client, _ = edge
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["ready"] is True
    await client.post(SMS, data=BODY)
    text = await (await client.get("/metrics")).text()
    assert 'ringback_edge_requests_total{outcome="accepted",route="tencent/sms-status"}' in text


#: What a vendor gets when its callback could not be made durable: Tencent a 503 with a non-zero
#: result; the CDR platform (which retries on HTTP 500 only) and click-to-call a 500.
RETRYABLE = {TENCENT: (503, True), HTTP_STATUS: (500, False)}


@pytest.mark.parametrize(
    ("route", "status", "tencent_shape"),
    [(r.path, *RETRYABLE[r.reply_style]) for r in ROUTES],
    ids=[r.name for r in ROUTES],
)
async def test_broker_down_gives_a_retryable_failure_never_a_success(
    make_settings: Callable[..., Settings], route: str, status: int, tencent_shape: bool
) -> None:
    settings = make_settings(kafka_bootstrap=f"127.0.0.1:{free_port()}", publish_timeout_s=0.5, spool_max_bytes=0)
    client = await client_for(settings)
    try:
        started = time.monotonic()
        response = await client.post(route, data=BODY)
        assert response.status == status
        if tencent_shape:
            reply = await response.json()
            assert reply["result"] != 0 and reply["errmsg"]
        assert time.monotonic() - started < 10  # answered after the publish budget, not left hanging
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["reasons"] == [
            "the broker does not answer and the edge has no journal (spool_max_bytes = 0)"
        ]
    finally:
        await client.close()


async def test_broker_unreachable_spools_and_replies_success(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(kafka_bootstrap=f"127.0.0.1:{free_port()}", publish_timeout_s=0.5)
    client = await client_for(settings)
    try:
        for _ in range(3):
            response = await client.post(SMS, data=BODY)
            assert response.status == 200 and await response.read() == b'{"result":0,"errmsg":"OK"}'
        ready = await client.get("/readyz")
        assert ready.status == 200 and (await ready.json())["reasons"] == []
        journal = (await ready.json())["journal"]
        assert journal["records"] == 3 and journal["mode"] == "spool"
        assert "ringback_edge_journal_records 3.0" in await (await client.get("/metrics")).text()
    finally:
        await client.close()


async def test_full_spool_and_no_broker_is_a_retryable_failure(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}", publish_timeout_s=0.5, spool_max_bytes=len(BODY) * 2
    )
    client = await client_for(settings)
    try:
        statuses = [(await client.post(SMS, data=BODY)).status for _ in range(4)]
        assert statuses[0] == 200 and statuses[-1] == 503
        ready = await client.get("/readyz")
        (reason,) = (await ready.json())["reasons"]
        assert ready.status == 503 and reason.startswith("the broker does not answer and the journal is full ("), reason
    finally:
        await client.close()


async def test_paused_broker_then_back_every_spooled_callback_reaches_the_topic(
    make_settings: Callable[..., Settings],
) -> None:
    import os
    import signal

    with EmbeddedBroker() as own_broker:
        # One partition: the topic's order is the order the spool was drained in.
        settings = make_settings(kafka_bootstrap=own_broker.bootstrap, publish_timeout_s=0.5, kafka_partitions=1)
        await kafka.ensure_topics(settings)
        client = await client_for(settings)
        try:
            assert (await client.post(SMS, data=b"[0]")).status == 200  # connected and publishing
            assert own_broker.process is not None
            os.kill(own_broker.process.pid, signal.SIGSTOP)  # the broker hangs: no acknowledgements
            try:
                bodies = [f"[{i}]".encode() for i in range(1, 21)]
                for body in bodies:
                    response = await client.post(SMS, data=body)
                    assert response.status == 200
                spool = client.server.app[INTAKE].journal
                assert spool is not None and spool.untrimmed_records >= 19
            finally:
                os.kill(own_broker.process.pid, signal.SIGCONT)
            records = await read_topic(own_broker.bootstrap, settings.topic_raw, expected=21, timeout_s=60)
            in_order = list(dict.fromkeys(r.value for r in sorted(records, key=lambda r: r.offset)))
            assert in_order == [b"[0]", *bodies]  # nothing lost, and drained oldest first
            assert len(records) <= 22  # at most the one in flight at the pause published twice (same event ids)
            deadline = time.monotonic() + 10
            while not spool.is_empty and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert spool.is_empty
        finally:
            await client.close()


async def test_a_callback_too_large_to_publish_is_413_not_spooled(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    """The edge accepts bodies the producer is not allowed to send (its max_request_size made smaller than
    the body bound; the embedded broker has no message size limit to set): the producer's refusal is
    permanent, answered 413, and nothing is spooled or held up behind it."""
    settings = make_settings(kafka_bootstrap=broker.bootstrap, max_body_bytes=300_000)
    await kafka.ensure_topics(settings)
    client = await client_with_small_producer(settings)
    try:
        response = await client.post(SMS, data=UNSENDABLE)
        assert response.status == 413 and (await response.json())["result"] != 0
        assert (await client.post(SMS, data=BODY)).status == 200  # and nothing is held up behind it
        spool = client.server.app[INTAKE].journal
        assert spool is not None and spool.is_empty
    finally:
        await client.close()


async def test_the_journal_publishes_in_order_and_quarantines_what_the_producer_never_sends(
    make_settings: Callable[..., Settings],
) -> None:
    """Journal mode: every callback is acknowledged once journaled; the journal's publisher sends them as
    whole record batches, in journal order, with their context; one the producer will never send (larger
    than its max_request_size) leaves for the quarantine folder and holds up none behind it."""
    with EmbeddedBroker() as own_broker:
        settings = make_settings(
            kafka_bootstrap=own_broker.bootstrap, max_body_bytes=300_000, edge_journal="on", kafka_partitions=1
        )
        await kafka.ensure_topics(settings)
        client = await client_with_small_producer(settings)
        try:
            small = [f"[{i}]".encode() for i in range(60)]
            for body in [*small[:30], UNSENDABLE, *small[30:]]:
                assert (await client.post(SMS, data=body)).status == 200
            records = await read_topic(own_broker.bootstrap, settings.topic_raw, expected=60, timeout_s=30)
            in_order = [r.value for r in sorted(records, key=lambda r: r.offset)]
            assert in_order == small
            assert all(r.key == dict(r.headers)["ingest_id"] for r in records)
            journal = client.server.app[INTAKE].journal
            assert journal is not None
            deadline = time.monotonic() + 10
            quarantined: list[Path] = []
            while not quarantined and time.monotonic() < deadline:
                quarantined = list((journal.directory / "quarantine").glob("*.raw"))
                await asyncio.sleep(0.1)
            assert len(quarantined) == 1 and UNSENDABLE in quarantined[0].read_bytes()
        finally:
            await client.close()


async def test_without_a_tenants_file_anonymous_callbacks_are_rate_limited_per_address(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(kafka_bootstrap=broker.bootstrap, anonymous_rate_limit_per_s=3, rate_limit_burst_s=1)
    await kafka.ensure_topics(settings)
    client = await client_for(settings)
    try:
        ready = await (await client.get("/readyz")).json()
        assert ready["tenants"] == "none: open to anyone"
        started = time.monotonic()
        statuses = [(await client.post(SMS, data=BODY)).status for _ in range(12)]
        elapsed = time.monotonic() - started
        # A fresh bucket holds 3 (3/s for 1 s); what refilled while sending passes too, nothing more.
        assert set(statuses) <= {200, 429}, statuses
        assert 3 <= statuses.count(200) <= 3 + math.ceil(3 * elapsed), (elapsed, statuses)
        assert statuses[:3] == [200] * 3 and 429 in statuses, (elapsed, statuses)
        cdr = (await client.post("/callbacks/cdr-push", data=b"{}")).status
        assert cdr == 500  # the CDR platform retries on HTTP 500 only
        text = await (await client.get("/metrics")).text()
        assert 'ringback_edge_refused_total{reason="rate_limited",route="tencent/sms-status"}' in text
        tenant_url = (await client.post("/t/acme/some-secret-0000000000/callbacks/cdr-push", data=b"{}")).status
        assert tenant_url == 401  # no tenants file: no tenant exists
    finally:
        await client.close()
