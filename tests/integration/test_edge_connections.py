"""Connections against a real edge on a real socket: slow, idle, too many, malformed, too large."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ringback.config import Settings
from ringback.edge.app import create_app
from ringback.edge.connections import EdgeRunner
from ringback.edge.server import start_edge
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker
from tests.pipeline import ringback

pytestmark = pytest.mark.integration
SMS = "/callbacks/tencent/sms-status"
CDR = "/callbacks/cdr-push"
BODY = (
    b'[{"user_receive_time":"2015-10-17 '
    b'08:03:04","nationcode":"86","mobile":"13800138000","report_status":"SUCCESS","errmsg":"DELIVRD","description":"ok","sid":"c-1"}]'
)


@dataclass
class Edge:
    runner: EdgeRunner
    port: int
    settings: Settings

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, raw: bytes, timeout_s: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        reader, writer = await self.open()
        try:
            writer.write(raw)
            await writer.drain()
            return await asyncio.wait_for(read_response(reader), timeout_s)
        finally:
            writer.close()

    async def post(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nContent-Length: "
            f"{len(body)}\r\nConnection: close\r\n\r\n"
        )
        return await self.request(head.encode() + body)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("closed without a reply")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


@pytest.fixture
async def start(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> AsyncIterator[Callable[..., asyncio.Future[Edge]]]:
    runners: list[EdgeRunner] = []

    async def build(**overrides: object) -> Edge:
        settings = make_settings(kafka_bootstrap=broker.bootstrap, **overrides)
        await kafka.ensure_topics(settings)
        runner, port = await start_edge(settings, create_app(settings))
        runners.append(runner)
        return Edge(runner, port, settings)

    yield build  # type: ignore[misc]
    for runner in runners:
        await runner.cleanup()


async def closed_within(reader: asyncio.StreamReader, timeout_s: float) -> bool:
    """True when the server closes the connection within ``timeout_s``: an EOF, or a reset (a server
    that closes a socket holding bytes it has not read — a trickled head — answers with RST, not FIN)."""
    try:
        await asyncio.wait_for(reader.read(), timeout_s)
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def test_slow_header_clients_are_cut_off_while_others_are_served(
    start: Callable[..., asyncio.Future[Edge]],
) -> None:
    edge = await start(edge_header_timeout_s=1.0, edge_idle_timeout_s=30.0)
    slow = [await edge.open() for _ in range(50)]

    async def trickle(writer: asyncio.StreamWriter) -> None:
        try:
            for byte in b"POST /callbacks/tencent/sms-status HTTP/1.1\r\nHost: x\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.2)
        except (ConnectionError, OSError):
            pass

    trickles = [asyncio.create_task(trickle(writer)) for _, writer in slow]
    started = time.monotonic()
    status, _, body = await edge.post(SMS, BODY)  # a real vendor is served meanwhile
    assert status == 200 and json.loads(body)["result"] == 0
    closed = await asyncio.gather(*(closed_within(reader, 5.0) for reader, _ in slow))
    assert all(closed), f"{closed.count(False)} slow-header connections still open"
    assert time.monotonic() - started < 6.0
    for task in trickles:
        task.cancel()


async def test_idle_connections_are_closed(start: Callable[..., asyncio.Future[Edge]]) -> None:
    edge = await start(edge_idle_timeout_s=1.0, edge_header_timeout_s=10.0)
    never_sends = [await edge.open() for _ in range(20)]
    reader, writer = await edge.open()  # one that is served, then goes idle on a kept-alive connection
    writer.write(f"POST {SMS} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + BODY)
    assert (await read_response(reader))[0] == 200
    closed = await asyncio.gather(*(closed_within(r, 5.0) for r, _ in [*never_sends, (reader, writer)]))
    assert all(closed)


async def test_connections_over_the_per_address_cap_are_refused_with_503_and_counted(
    start: Callable[..., asyncio.Future[Edge]],
) -> None:
    edge = await start(edge_max_connections_per_ip=5)
    held = [await edge.open() for _ in range(5)]
    await asyncio.sleep(0.1)
    status, headers, body = await edge.post(SMS, BODY)
    assert status == 503 and headers["content-type"] == "application/json"
    assert json.loads(body)["result"] != 0
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.2)
    assert (await edge.post(SMS, BODY))[0] == 200  # room again once they are gone
    text = (await edge.request(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))[2].decode()
    assert 'ringback_edge_connections_refused_total{reason="per_address_limit"}' in text


async def test_the_total_cap_stays_below_the_descriptor_limit_and_recovers(
    start: Callable[..., asyncio.Future[Edge]],
) -> None:
    edge = await start(edge_max_connections=30, edge_max_connections_per_ip=0, edge_idle_timeout_s=1.5)
    held = [await edge.open() for _ in range(30)]
    await asyncio.sleep(0.1)
    status, _, _ = await edge.post(SMS, BODY)
    assert status == 503
    closed = await asyncio.gather(*(closed_within(reader, 5.0) for reader, _ in held))  # the idle ones time out...
    assert all(closed), f"{closed.count(False)} idle connections still open"
    await asyncio.sleep(0.2)
    assert (await edge.post(SMS, BODY))[0] == 200  # ...and the edge answers again
    text = (await edge.request(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))[2].decode()
    assert 'ringback_edge_connections_refused_total{reason="total_limit"}' in text


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"POST " + SMS.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
        (b"GARBAGE\x00\x01 / HTTP/9\r\n\r\n", 400),
        (b"POST " + SMS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
        (b"POST " + SMS.encode() + b" HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n", 400),
    ],
    ids=["oversized-header", "garbage-request-line", "negative-length", "too-many-headers"],
)
async def test_malformed_http_is_answered_in_the_vendor_shape(
    start: Callable[..., asyncio.Future[Edge]], raw: bytes, status: int
) -> None:
    edge = await start()
    got, headers, body = await edge.request(raw)
    assert got == status
    assert headers["content-type"] == "application/json"
    reply = json.loads(body)
    # exactly {"result":1,"errmsg":…}: what Tencent reads as a failure, nothing else in it
    assert body.startswith(b'{"result":1,"errmsg":"') and set(reply) == {"result", "errmsg"} and reply["errmsg"], body


#: The head of a POST of BODY: 4 header lines of its own.
HEAD_FIELDS = ("Host: edge", "Content-Type: application/json", f"Content-Length: {len(BODY)}", "Connection: close")
#: The bound on a header's value (aiohttp's, 8 KB less the line end); its name has the same bound of its own.
MAX_HEADER_VALUE = 8190


def post_with_headers(extra: list[str]) -> bytes:
    return "\r\n".join([f"POST {SMS} HTTP/1.1", *HEAD_FIELDS, *extra, "", ""]).encode() + BODY


@pytest.mark.parametrize(("headers", "status"), [(64, 200), (65, 400)], ids=["64-taken", "65-refused"])
async def test_at_most_64_headers(start: Callable[..., asyncio.Future[Edge]], headers: int, status: int) -> None:
    edge = await start()
    extra = [f"X-Field-{i}: y" for i in range(headers - len(HEAD_FIELDS))]
    got, _, body = await edge.request(post_with_headers(extra))
    assert got == status, body
    assert (json.loads(body)["result"] == 0) is (status == 200)


@pytest.mark.parametrize(
    ("value_bytes", "status"),
    [(MAX_HEADER_VALUE, 200), (MAX_HEADER_VALUE + 1, 431)],
    ids=["8190-taken", "8191-refused"],
)
async def test_a_header_of_at_most_8_kb(
    start: Callable[..., asyncio.Future[Edge]], value_bytes: int, status: int
) -> None:
    edge = await start()
    got, headers, body = await edge.request(post_with_headers([f"X-Big: {'a' * value_bytes}"]))
    assert got == status, body
    assert headers["content-type"] == "application/json"
    assert (json.loads(body)["result"] == 0) is (status == 200)


async def test_unknown_path_and_wrong_method_are_answered_in_the_vendor_shape(
    start: Callable[..., asyncio.Future[Edge]],
) -> None:
    edge = await start()
    status, _, body = await edge.post("/callbacks/nobody", b"{}")
    assert status == 404 and json.loads(body)["result"] != 0
    status, headers, body = await edge.request(f"GET {SMS} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status == 405 and json.loads(body)["result"] != 0 and "POST" in headers["allow"]


async def hold_in_flight(edge: Edge) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A request whose body never finishes: in flight until its body read times out or it is closed."""
    reader, writer = await edge.open()
    writer.write(f"POST {SMS} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".encode() + b"[")
    await writer.drain()
    return reader, writer


async def test_requests_in_flight_are_bounded(start: Callable[..., asyncio.Future[Edge]]) -> None:
    """edge_max_in_flight requests at once; the next one gets the retryable failure at once (Tencent: 503
    with a non-zero result), and the edge takes callbacks again as soon as one leaves."""
    edge = await start(edge_max_in_flight=2, body_read_timeout_s=30.0)
    first = await hold_in_flight(edge)
    second = await hold_in_flight(edge)
    deadline = time.monotonic() + 10
    while (answer := await edge.post(SMS, BODY))[0] == 200:  # until both held requests have entered
        assert time.monotonic() < deadline, "the two held requests never got in"
        await asyncio.sleep(0.05)
    status, _, body = answer
    assert status == 503 and json.loads(body)["result"] != 0, answer
    first[1].close()
    deadline = time.monotonic() + 10
    while (status := (await edge.post(SMS, BODY))[0]) != 200:  # the closed one leaves once the edge notices
        assert time.monotonic() < deadline and status == 503, status
        await asyncio.sleep(0.05)
    second[1].close()


async def test_body_bytes_in_flight_are_bounded(start: Callable[..., asyncio.Future[Edge]]) -> None:
    """Clients that send large bodies slowly cannot make the edge hold more than the byte budget (counted
    as bytes arrive): past it they get the retryable failure."""
    edge = await start(
        max_body_bytes=100_000,
        edge_max_in_flight_bytes=250_000,
        edge_in_flight_share_per_ip=1.0,
        body_read_timeout_s=5.0,
    )
    holders = []
    for _ in range(2):  # 2 x 99 kB held, their bodies never finish
        reader, writer = await edge.open()
        writer.write(f"POST {SMS} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode() + b"[" * 99_000)
        await writer.drain()
        holders.append((reader, writer))
    deadline = time.monotonic() + 10
    readyz = b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    while json.loads((await edge.request(readyz))[2])["in_flight"]["bytes"] < 198_000:
        assert time.monotonic() < deadline, "the held bodies did not arrive"
        await asyncio.sleep(0.05)
    status, _, body = await edge.post(SMS, b"[" + b" " * 99_000 + b"]")  # a third would pass 250 kB
    assert status == 503 and json.loads(body)["result"] != 0
    assert (await edge.post(SMS, BODY))[0] == 200  # small ones still fit
    for _, writer in holders:
        writer.close()


PER_ADDRESS_CAP = 3


async def test_errors_are_logged_as_one_json_line_each(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The edge as a process, in JSON log mode: malformed traffic leaves JSON lines, no tracebacks."""
    settings = make_settings(
        kafka_bootstrap=broker.bootstrap, edge_header_timeout_s=0.5, edge_max_connections_per_ip=PER_ADDRESS_CAP
    )
    await kafka.ensure_topics(settings)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RINGBACK_")},
        **settings.as_env(),
        "RINGBACK_LOG_FORMAT": "json",
    }
    log_path = tmp_path / "edge.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(ringback("edge"), env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (settings.run_dir / "edge.json").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        port = int(json.loads((settings.run_dir / "edge.json").read_text())["url"].rsplit(":", 1)[1])
        edge = Edge(runner=None, port=port, settings=settings)  # type: ignore[arg-type]
        for raw in (b"GARBAGE\x00 / HTTP/9\r\n\r\n", b"POST / HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n"):
            assert (await edge.request(raw))[0] in (400, 431)
        reader, writer = await edge.open()
        writer.write(b"POST")
        assert await closed_within(reader, 5.0)  # a head that never completes
        assert (await edge.post(SMS, BODY))[0] == 200
        held = [await edge.open() for _ in range(PER_ADDRESS_CAP)]
        over = await edge.open()  # over the per-address cap: refused at once, and logged
        over[1].write(f"POST {SMS} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(BODY)}\r\n\r\n".encode() + BODY)
        try:
            status: int | None = (await asyncio.wait_for(read_response(over[0]), 10))[0]
        except ConnectionError:  # closed before the 503 could be read (the test above reads it)
            status = None
        assert status in (503, None)
        for _, writer in [*held, over]:
            writer.close()
    finally:
        process.terminate()
        process.wait(30)
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines), lines
    text = "\n".join(lines)
    assert "Traceback" not in text
    assert text.count('"malformed request"') == 2 and '"request head not received in time' in text
    refused = [json.loads(line) for line in lines if '"connection refused"' in line]
    assert refused and refused[0].get("reason") == "per_address_limit", lines
