"""The edge baseline: a bare aiohttp handler that reads the body and gives Tencent's success reply,
publishing nothing. What the real edge adds on top of it is what the edge benchmark measures."""

from __future__ import annotations

import sys

from aiohttp import web

from ringback.edge.replies import TENCENT_OK
from ringback.runtime.lifecycle import run_async


async def handle(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=TENCENT_OK, content_type="application/json")


async def serve(port: int) -> int:
    import asyncio

    app = web.Application()
    app.router.add_post("/callbacks/{route:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print("ready", flush=True)
    await asyncio.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_async(lambda: serve(int(sys.argv[1]))))
