"""``GET /openapi.json``: the edge's API described, served as built.

The edge does not build the document: ``ringback.tools.openapi`` assembles it from the route table and
the request bodies described beside the adapters, and ``make docs`` writes it to
``schemas/openapi.json``. The edge reads that file once and serves its bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path

from aiohttp import web

from ringback import logs
from ringback.edge import replies

DOCUMENT_PATH = "/openapi.json"
FILE_NAME = "openapi.json"  # in schemas_dir
JSON = "application/json"

log = logs.get(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load(schemas_dir: str | Path) -> bytes | None:
    path = Path(schemas_dir) / FILE_NAME
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def handler(schemas_dir: str | Path) -> Handler:
    """``GET /openapi.json``: the document from ``schemas_dir``, read once."""
    document = load(schemas_dir)
    if document is None:
        log.warning("API description not found: GET /openapi.json answers 404", path=str(Path(schemas_dir) / FILE_NAME))

    async def serve(_: web.Request) -> web.Response:
        if document is None:
            return replies.error_response(HTTPStatus.NOT_FOUND, "API description not installed")
        return web.Response(body=document, content_type=JSON)

    return serve
