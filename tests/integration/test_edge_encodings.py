"""Compressed bodies on a live edge: decoded and published, or refused in the vendor's shape as the OpenAPI
document says — corrupt 400, an encoding the edge does not decode 415, a zip bomb 413 — each counted,
logged as one line, and never an internal error."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from ringback.config import Settings
from ringback.edge import bodies
from ringback.edge.app import create_app
from ringback.edge.connections import EdgeRunner
from ringback.edge.server import start_edge
from ringback.routes import ROUTES, TENCENT, Route
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker
from tests.integration.test_api_replies import Edge, Reply, assert_documented
from tests.kafka_helpers import read_topic
from tests.pipeline import ringback

pytestmark = pytest.mark.integration
MAX_BODY_BYTES = 4096
TENCENT_ROUTE = next(route for route in ROUTES if route.reply_style == TENCENT)
HTTP_STATUS_ROUTE = next(route for route in ROUTES if route.reply_style != TENCENT)
BOTH_STYLES = [TENCENT_ROUTE, HTTP_STATUS_ROUTE]


def zstd_compress(data: bytes) -> bytes:
    assert bodies.ZstdDecompressor is not None
    try:
        from compression import zstd as module  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from backports import zstd as module  # type: ignore[import-not-found,no-redef,unused-ignore]
    return bytes(module.compress(data))


@pytest.fixture
async def start(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> AsyncIterator[Callable[[], Awaitable[tuple[Edge, Settings]]]]:
    runners: list[EdgeRunner] = []

    async def build() -> tuple[Edge, Settings]:
        settings = make_settings(kafka_bootstrap=broker.bootstrap, max_body_bytes=MAX_BODY_BYTES)
        await kafka.ensure_topics(settings)
        runner, port = await start_edge(settings, create_app(settings))
        runners.append(runner)
        return Edge(port), settings

    yield build
    for runner in runners:
        await runner.cleanup()


def counted(route: Route) -> float:
    sample = REGISTRY.get_sample_value(
        "ringback_edge_requests_total", {"route": route.name, "outcome": bodies.BAD_ENCODING}
    )
    return sample or 0.0


async def post(edge: Edge, route: Route, body: bytes, encoding: str) -> Reply:
    return await edge.post(route.path, body, f"Content-Encoding: {encoding}\r\n")


def text(tag: str) -> bytes:
    return b'{"cdr":[{"requestid":"' + tag.encode() + b'","oriamount":"0.06"}]}'


async def test_compressed_bodies_are_published_decoded(start: Callable[[], Awaitable[tuple[Edge, Settings]]]) -> None:
    edge, settings = await start()
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    sent = {
        "gzip": gzip.compress(text("enc-gzip")),
        "deflate": zlib.compress(text("enc-deflate")),
        "Deflate": packer.compress(text("enc-raw-deflate")) + packer.flush(),  # raw, as some senders mean it
        "zstd": zstd_compress(text("enc-zstd-1")) + zstd_compress(text("enc-zstd-2")),  # two frames
        "identity": text("enc-identity"),
    }
    for encoding, body in sent.items():
        reply = await post(edge, HTTP_STATUS_ROUTE, body, encoding)
        assert reply.status == 200, (encoding, reply.body)
    records = await read_topic(settings.kafka_bootstrap, settings.topic_raw, expected=len(sent))
    assert sorted(record.value for record in records) == sorted(
        [
            text("enc-gzip"),
            text("enc-deflate"),
            text("enc-raw-deflate"),
            text("enc-zstd-1") + text("enc-zstd-2"),
            text("enc-identity"),
        ]
    )


@pytest.mark.parametrize("route", BOTH_STYLES, ids=lambda route: route.name)
async def test_a_corrupt_compressed_body_is_the_documented_400(
    start: Callable[[], Awaitable[tuple[Edge, Settings]]], route: Route
) -> None:
    edge, settings = await start()
    before = counted(route)
    good = gzip.compress(text("corrupt"))
    corrupt = {
        "gzip": [b"not gzip at all", good[: len(good) // 2], good[:-1] + bytes([good[-1] ^ 0xFF])],
        "deflate": [b"\x78\x9c garbage"],
        "zstd": [b"\x28\xb5\x2f\xfd garbage", zstd_compress(text("cut"))[:-3]],
    }
    for encoding, bad_bodies in corrupt.items():
        for bad in bad_bodies:
            reply = await post(edge, route, bad, encoding)
            assert reply.status == 400, (encoding, bad, reply.body)
            assert_documented(route.path, "post", reply)
    assert (await post(edge, route, good, "gzip")).status == 200  # the edge is fine afterwards
    assert counted(route) == before + 6
    records = await read_topic(settings.kafka_bootstrap, settings.topic_raw, expected=1, timeout_s=5)
    assert [record.value for record in records] == [text("corrupt")]  # nothing of the refused ones published


@pytest.mark.parametrize("route", BOTH_STYLES, ids=lambda route: route.name)
@pytest.mark.parametrize("encoding", ["br", "compress", "gzip, gzip", "x-something"])
async def test_an_encoding_the_edge_does_not_decode_is_the_documented_415(
    start: Callable[[], Awaitable[tuple[Edge, Settings]]], route: Route, encoding: str
) -> None:
    edge, _ = await start()
    reply = await post(edge, route, b"\x1b\x00\x00 whatever", encoding)
    assert reply.status == 415, reply.body
    assert_documented(route.path, "post", reply)


@pytest.mark.parametrize("route", BOTH_STYLES, ids=lambda route: route.name)
async def test_a_zip_bomb_is_the_documented_413_and_is_not_expanded(
    start: Callable[[], Awaitable[tuple[Edge, Settings]]], route: Route
) -> None:
    edge, _ = await start()
    zeros = b"\0" * (32 * 1024 * 1024)
    bombs = {"gzip": gzip.compress(zeros, compresslevel=9), "zstd": zstd_compress(zeros)}
    del zeros
    for encoding, bomb in bombs.items():
        assert len(bomb) < MAX_BODY_BYTES * 100
        if len(bomb) > MAX_BODY_BYTES:
            bomb = bomb[:MAX_BODY_BYTES]  # it only has to pass the length check to be expanded
        started = asyncio.get_running_loop().time()
        reply = await post(edge, route, bomb, encoding)
        assert reply.status == 413, (encoding, reply.body)
        assert asyncio.get_running_loop().time() - started < 5.0
        assert_documented(route.path, "post", reply)


@pytest.mark.parametrize("route", BOTH_STYLES, ids=lambda route: route.name)
async def test_an_expectation_other_than_100_continue_is_the_documented_417(
    start: Callable[[], Awaitable[tuple[Edge, Settings]]], route: Route
) -> None:
    edge, _ = await start()
    reply = await edge.post(route.path, b"{}", "Expect: something-else\r\n")
    assert reply.status == 417, reply.body
    assert_documented(route.path, "post", reply)


@pytest.mark.parametrize("route", BOTH_STYLES, ids=lambda route: route.name)
async def test_100_continue_is_sent_only_for_a_head_the_body_may_follow(
    start: Callable[[], Awaitable[tuple[Edge, Settings]]], route: Route
) -> None:
    edge, _ = await start()
    for extra, status in (
        (f"Content-Length: {MAX_BODY_BYTES * 1000}\r\n", 413),
        ("Content-Length: 2\r\nContent-Encoding: br\r\n", 415),
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        try:
            writer.write(f"POST {route.path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n{extra}\r\n".encode())
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), 10)
            assert status_line.split()[1] == str(status).encode(), status_line  # no "100 Continue" first
        finally:
            writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    try:
        writer.write(
            f"POST {route.path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n".encode()
        )
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 100 ")
        assert await asyncio.wait_for(reader.readline(), 10) == b"\r\n"
        writer.write(b"{}")
        assert (await asyncio.wait_for(reader.readline(), 10)).split()[1] == b"200"
    finally:
        writer.close()


async def test_refused_bodies_are_logged_as_one_json_line_each_without_a_traceback(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The edge as a process, in JSON log mode: corrupt and undecodable bodies leave JSON lines, never an
    internal error."""
    settings = make_settings(kafka_bootstrap=broker.bootstrap)
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
        deadline = time.monotonic() + 60
        while not (settings.run_dir / "edge.json").exists():
            assert time.monotonic() < deadline and process.poll() is None, log_path.read_text()
            await asyncio.sleep(0.1)
        edge = Edge(int(json.loads((settings.run_dir / "edge.json").read_text())["url"].rsplit(":", 1)[1]))
        for route in BOTH_STYLES:
            assert (await post(edge, route, b"not gzip", "gzip")).status == 400
            assert (await post(edge, route, b"\x28\xb5\x2f\xfd garbage", "zstd")).status == 400
            assert (await post(edge, route, b"{}", "br")).status == 415
    finally:
        process.terminate()
        process.wait(30)
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    text = "\n".join(lines)
    assert "Traceback" not in text and "internal error" not in text and "Unhandled" not in text
    refused = [r for r in records if r.get("event") == "callback body refused"]
    assert {(r["route"], r["outcome"], r["status"]) for r in refused} == {
        (route.name, outcome, status)
        for route in BOTH_STYLES
        for outcome, status in ((bodies.BAD_ENCODING, 400), (bodies.UNSUPPORTED_ENCODING, 415))
    }
