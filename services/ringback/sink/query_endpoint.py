"""The sink's loopback, read-only query endpoint: how `ringback sql` reaches an embedded store that
this process owns (chdb allows one process per store).

It listens on 127.0.0.1 only, requires a random token that is written, owner-readable only, to
``<data_dir>/run/sink-query.json``, and runs every query with ClickHouse's ``readonly=2``.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

RUN_FILE = "sink-query"
TOKEN_HEADER = "X-Ringback-Token"
LOOPBACK = "127.0.0.1"

QueryFn = Callable[[str, str], Awaitable[bytes]]


def query_app(run_query: QueryFn, token: str) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        if not secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), token):
            return web.Response(status=403, text="bad or missing token")
        payload = await request.json()
        try:
            result = await run_query(str(payload["query"]), str(payload.get("format", "TabSeparated")))
        except Exception as exc:  # the analyst's SQL error goes back to the analyst, verbatim
            return web.Response(status=400, text=str(exc))
        return web.Response(body=result, content_type="application/octet-stream")

    app = web.Application(client_max_size=1_048_576)
    app.router.add_post("/query", handle)
    return app


def new_token() -> str:
    return secrets.token_urlsafe(24)
