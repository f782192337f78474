"""The in-flight budget on a live edge: bytes counted as they arrive, a share per address, an announced
length over the bound refused at once, and /readyz telling when the edge sheds."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ringback.config import Settings
from ringback.edge.app import create_app
from ringback.edge.connections import EdgeRunner
from ringback.edge.server import start_edge
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker
from tests.integration.test_edge_connections import read_response

pytestmark = pytest.mark.integration
SMS = "/callbacks/tencent/sms-status"
CDR = "/callbacks/cdr-push"
BODY = (
    b'[{"user_receive_time":"2015-10-17 08:03:04","nationcode":"86","mobile":"13800138000",'
    b'"report_status":"SUCCESS","errmsg":"DELIVRD","description":"ok","sid":"budget-1"}]'
)
ATTACKER = "127.0.0.1"
VENDOR = "127.0.0.2"  # loopback answers every 127/8 address: a second client address on one machine
DEADLINE_S = 20.0

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class Edge:
    port: int
    settings: Settings

    async def open(self, source: str = ATTACKER) -> Connection:
        return await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))

    async def request(self, raw: bytes, source: str = ATTACKER) -> tuple[int, dict[str, str], bytes]:
        reader, writer = await self.open(source)
        try:
            writer.write(raw)
            await writer.drain()
            return await asyncio.wait_for(read_response(reader), DEADLINE_S)
        finally:
            writer.close()

    async def post(self, path: str, body: bytes, source: str = ATTACKER) -> tuple[int, dict[str, str], bytes]:
        head = f"POST {path} HTTP/1.1\r\nHost: edge\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        return await self.request(head.encode() + body, source)

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        status, _, body = await self.request(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", VENDOR)
        return status, json.loads(body)

    async def metrics(self) -> str:
        return (await self.request(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", VENDOR))[
            2
        ].decode()

    async def wait_for(self, what: str, condition: Callable[[int, dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            status, ready = await self.readyz()
            if condition(status, ready):
                return ready
            assert time.monotonic() < deadline, f"{what}: /readyz still says {status} {ready}"
            await asyncio.sleep(0.05)


@pytest.fixture
async def start(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> AsyncIterator[Callable[..., Awaitable[Edge]]]:
    runners: list[EdgeRunner] = []

    async def build(**overrides: object) -> Edge:
        settings = make_settings(kafka_bootstrap=broker.bootstrap, **overrides)
        await kafka.ensure_topics(settings)
        runner, port = await start_edge(settings, create_app(settings))
        runners.append(runner)
        return Edge(port, settings)

    yield build
    for runner in runners:
        await runner.cleanup()


async def hold(edge: Edge, path: str, announced: int, sent: bytes, source: str = ATTACKER) -> Connection:
    """A request that announces ``announced`` body bytes, sends ``sent`` of them, and waits."""
    reader, writer = await edge.open(source)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {announced}\r\n\r\n".encode() + sent)
    await writer.drain()
    return reader, writer


def close(connections: list[Connection]) -> None:
    for _, writer in connections:
        writer.close()


async def test_seventy_announced_megabytes_do_not_shut_the_door(start: Callable[..., Awaitable[Edge]]) -> None:
    """70 connections each announcing a 1 MiB body and sending none of it held 70 MiB of a 64 MiB budget:
    every callback got 503 for as long as they waited. Announced bytes are not held bytes."""
    edge = await start(body_read_timeout_s=30.0)
    assert edge.settings.edge_max_in_flight_bytes < 70 * edge.settings.max_body_bytes
    idle = [await hold(edge, SMS, edge.settings.max_body_bytes, b"") for _ in range(70)]
    try:
        await edge.wait_for("70 requests in flight", lambda _, r: r["in_flight"]["requests"] == 70)
        for source in (VENDOR, ATTACKER):  # another client, and even the same address: room for both
            status, _, body = await edge.post(SMS, BODY, source)
            assert status == 200 and json.loads(body)["result"] == 0, (source, body)
        status, ready = await edge.readyz()
        assert status == 200 and ready["shedding"] is None and ready["in_flight"]["bytes"] == 0
    finally:
        close(idle)


async def test_one_address_sending_real_bytes_is_held_to_its_share(start: Callable[..., Awaitable[Edge]]) -> None:
    """Bodies that do arrive count: one address holding its share of the budget is shed, alone."""
    edge = await start(
        max_body_bytes=100_000,
        edge_max_in_flight_bytes=1_000_000,
        edge_in_flight_share_per_ip=0.25,
        body_read_timeout_s=30.0,
    )
    chunk = b"[" + b" " * 89_999
    held = [await hold(edge, CDR, 100_000, chunk) for _ in range(2)]  # 180 kB of the address's 250 kB
    try:
        await edge.wait_for("180 kB held", lambda _, r: r["in_flight"]["bytes"] == 180_000)
        status, headers, body = await edge.post(CDR, b"[" + b" " * 89_998 + b"]")  # a third would pass 250 kB
        assert status == 500 and headers["connection"] == "close", body  # the CDR platform retries on 500
        status, _, _ = await edge.post(CDR, b"[" + b" " * 89_998 + b"]", VENDOR)
        assert status == 200  # another address is served
        status, ready = await edge.readyz()
        assert status == 200 and ready["shedding"]["reasons"] == ["address_share_bytes"]  # the edge is not full
        assert ready["reasons"] == []
        assert 'ringback_edge_shed_total{reason="address_share_bytes"}' in await edge.metrics()
    finally:
        close(held)


async def test_a_declared_length_over_the_bound_is_413_at_once(start: Callable[..., Awaitable[Edge]]) -> None:
    edge = await start(max_body_bytes=1_048_576, body_read_timeout_s=30.0)
    for path in (SMS, CDR):
        started = time.monotonic()
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n".encode()
        status, headers, body = await edge.request(head + b"[")
        assert status == 413, body
        assert time.monotonic() - started < edge.settings.body_read_timeout_s / 3  # not the body's timeout
        assert headers["connection"] == "close"
        if path == SMS:
            assert json.loads(body)["result"] != 0  # Tencent's shape
    chunked = b"POST " + CDR.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = b"".join(b"%x\r\n%s\r\n" % (100_000, b" " * 100_000) for _ in range(11))  # 1.1 MB, never announced
    status, _, _ = await edge.request(chunked + chunks + b"0\r\n\r\n")
    assert status == 413
    assert (await edge.post(SMS, BODY, VENDOR))[0] == 200


async def test_readyz_tells_while_the_edge_sheds_and_recovers_by_itself(
    start: Callable[..., Awaitable[Edge]],
) -> None:
    edge = await start(
        edge_max_in_flight=4, edge_in_flight_share_per_ip=1.0, edge_shed_ready_hold_s=1.0, body_read_timeout_s=30.0
    )
    held = [await hold(edge, SMS, 100, b"[") for _ in range(4)]
    try:
        await edge.wait_for("4 requests in flight", lambda _, r: r["in_flight"]["requests"] == 4)
        status, _, body = await edge.post(SMS, BODY, VENDOR)
        assert status == 503 and json.loads(body)["result"] != 0
        ready = await edge.wait_for("shedding shown", lambda status, _: status == 503)
        assert ready["ready"] is False and ready["shedding"]["reasons"] == ["in_flight_requests"]
        assert ready["reasons"] == ["shedding load: in_flight_requests"]
        assert 0 < ready["shedding"]["clears_after_s"] <= 1.0
    finally:
        close(held)
    await edge.wait_for("room again", lambda _, r: r["in_flight"]["requests"] == 0)
    ready = await edge.wait_for("ready again", lambda status, _: status == 200)
    assert ready["shedding"] is None
    assert (await edge.post(SMS, BODY, VENDOR))[0] == 200
