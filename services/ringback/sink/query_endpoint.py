"""The sink's loopback query endpoint: how `ringback sql` reaches an embedded store that this process
owns (chdb allows one process per store).

It listens on 127.0.0.1 only and requires a random token that is written, owner-readable only, to
``<data_dir>/run/sink-query.json``. Each query goes through the query guard and runs on the sink's
reader client (``readonly=1``, bounded by the query limits), on a thread apart from the inserts; see
:meth:`ringback.sink.worker.Sink.query`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

RUN_FILE = "sink-query"
TOKEN_HEADER = "X-Ringback-Token"
LOOPBACK = "127.0.0.1"
DEFAULT_FORMAT = "TabSeparated"
MAX_REQUEST_BYTES = 1_048_576

#: (query, default format, output settings) -> the answer.
QueryFn = Callable[[str, str, dict[str, str]], Awaitable[bytes]]


def query_app(run_query: QueryFn, token: str) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        if not secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), token):
            return web.Response(status=403, text="bad or missing token")
        try:
            payload = await request.json()
            query, default_format = payload["query"], payload.get("format", DEFAULT_FORMAT)
            settings = payload.get("settings", {})
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            return web.Response(
                status=400, text='expected a JSON object {"query": "...", "format": "...", "settings": {...}}'
            )
        if not isinstance(query, str) or not isinstance(default_format, str) or not _string_map(settings):
            return web.Response(status=400, text="query and format must be strings, settings an object of strings")
        try:
            result = await run_query(query, default_format, settings)
        except Exception as exc:  # a refusal, or the analyst's SQL error: back to the analyst, verbatim
            return web.Response(status=400, text=str(exc))
        return web.Response(body=result, content_type="application/octet-stream")

    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app.router.add_post("/query", handle)
    return app


def _string_map(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def new_token() -> str:
    return secrets.token_urlsafe(24)
