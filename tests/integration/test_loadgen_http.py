"""The load generator's HTTP client against a real aiohttp server: replies of every framing, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ringback.runtime.ports import free_port
from ringback.tools.loadgen.connection import Connection, HttpError

pytestmark = pytest.mark.integration


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[bytes]]]:
    seen: list[bytes] = []

    async def fixed(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.json_response({"result": 0, "errmsg": "OK"})

    async def chunked(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=202)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"first,", b"second"):
            await response.write(part)
        await response.write_eof()
        return response

    async def closing(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=503, text="busy", headers={"Connection": "close"})

    app = web.Application()
    app.router.add_post("/base/fixed", fixed)
    app.router.add_post("/base/chunked", chunked)
    app.router.add_post("/base/closing", closing)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/base", seen
    await runner.cleanup()


async def test_keep_alive_posts_and_every_reply_framing(server: tuple[str, list[bytes]]) -> None:
    url, seen = server
    connection = Connection(url, timeout_s=5)
    try:
        for i in range(3):
            assert await connection.post("/fixed", b'{"n":%d}' % i) == (200, b'{"result": 0, "errmsg": "OK"}')
        assert seen == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
        first_socket = connection.writer
        assert await connection.post("/chunked", b"{}") == (202, b"first,second")
        assert connection.writer is first_socket  # the same connection throughout
        assert await connection.post("/closing", b"{}") == (503, b"busy")
        assert connection.writer is None  # the server said close: the next post reconnects
        assert (await connection.post("/fixed", b"{}"))[0] == 200
    finally:
        connection.close()


async def test_no_server_is_an_http_error_and_the_connection_recovers() -> None:
    connection = Connection(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(HttpError):
        await connection.post("/callbacks/x", b"{}")
    assert connection.writer is None
    with pytest.raises(ValueError):
        Connection("ftp://example.com", timeout_s=1)
