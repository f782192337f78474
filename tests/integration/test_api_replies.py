"""Every reply the OpenAPI document lists, provoked on a live edge, is the reply the document describes.

The fuzz (``test_api_fuzz.py``) only reaches what well-formed requests to a healthy edge can: here each
other documented reply is provoked on purpose — a refusal at the door (no tenant URL, wrong secret,
address not allowed, rate limited), a body too large or too slow, malformed HTTP, a header line too
long, a wrong method, too many connections, a callback that cannot be made durable — and its status,
content type and body are checked against the document (``schemas/openapi.json``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ringback.config import Settings
from ringback.edge import openapi
from ringback.edge.app import create_app
from ringback.edge.connections import EdgeRunner
from ringback.edge.server import start_edge
from ringback.routes import ROUTES, TENCENT, Route
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker
from ringback.runtime.ports import free_port
from ringback.tools.openapi.document import tenant_path
from tests.conftest import REPO_ROOT
from tests.integration.test_edge_connections import read_response

pytestmark = pytest.mark.integration

DOCUMENT: dict[str, Any] = json.loads((REPO_ROOT / "schemas" / openapi.FILE_NAME).read_bytes())
MAX_BODY_BYTES = 1024
BODY_READ_TIMEOUT_S = 0.5
SECRET = "replies-secret-0123456789"
OPEN, FENCED, SLOW = "open", "fenced", "slow"
TENANTS_FILE = f"""allow_anonymous = false

[[tenants]]
id = "{OPEN}"
secret = "{SECRET}"

[[tenants]]
id = "{FENCED}"
secret = "{SECRET}"
allow_ips = ["192.0.2.0/24"]

[[tenants]]
id = "{SLOW}"
secret = "{SECRET}"
rate_limit_per_s = 0.01
"""
TENANT_TEMPLATE = "/t/{tenant}/{secret}"
BODY = b"{}"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Edge:
    port: int

    async def send(self, raw: bytes, timeout_s: float = 10.0) -> Reply:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(raw)
            await writer.drain()
            return Reply(*await asyncio.wait_for(read_response(reader), timeout_s))
        finally:
            writer.close()

    async def post(self, path: str, body: bytes = BODY, extra_headers: str = "") -> Reply:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nContent-Length: "
            f"{len(body)}\r\n{extra_headers}Connection: close\r\n\r\n"
        )
        return await self.send(head.encode() + body)


def resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def assert_documented(template: str, method: str, reply: Reply, response: Mapping[str, Any] | None = None) -> None:
    """``reply`` is one the document lists for ``method template`` (or is ``response``): status, media type, body."""
    if response is None:
        responses = DOCUMENT["paths"][template][method]["responses"]
        assert str(reply.status) in responses, (
            f"{method.upper()} {template} answered {reply.status}, which the document does not list"
        )
        response = resolve(responses[str(reply.status)])
    media_type = reply.headers.get("content-type", "").split(";")[0].strip()
    assert media_type in response["content"], (
        f"{method.upper()} {template} {reply.status}: {media_type!r} not documented"
    )
    value = json.loads(reply.body) if media_type == openapi.JSON else reply.body.decode()
    schema = response["content"][media_type]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": DOCUMENT["components"]}).validate(value)


@pytest.fixture
async def start(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    runners: list[EdgeRunner] = []

    async def build(*, tenants: str | None = TENANTS_FILE, **overrides: object) -> Edge:
        if tenants is not None:
            (tmp_path / "tenants.toml").write_text(tenants, encoding="utf-8")
            overrides["tenants_file"] = str(tmp_path / "tenants.toml")
        overrides.setdefault("kafka_bootstrap", broker.bootstrap)
        settings = make_settings(**overrides)
        if settings.kafka_bootstrap == broker.bootstrap:
            await kafka.ensure_topics(settings)
        runner, port = await start_edge(settings, create_app(settings))
        runners.append(runner)
        return Edge(port)

    yield build
    for runner in runners:
        await runner.cleanup()


def tenant_url(route: Route, tenant: str, secret: str = SECRET) -> str:
    return f"/t/{tenant}/{secret}{route.path}"


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
async def test_refusals_at_the_door_are_the_documented_replies(start: Callable[..., Any], route: Route) -> None:
    edge = await start()
    anonymous, tenant = route.path, tenant_path(route)
    expected = {
        "anonymous without a tenant URL": (anonymous, route.path, 401),
        "the right secret": (tenant, tenant_url(route, OPEN), 200),
        "a wrong secret": (tenant, tenant_url(route, OPEN, "not-" + SECRET), 401),
        "an unknown tenant": (tenant, tenant_url(route, "nobody"), 401),
        "an address outside allow_ips": (tenant, tenant_url(route, FENCED), 403),
        "an empty tenant segment": (tenant, tenant_url(route, ""), 404),
    }
    for what, (template, path, status) in expected.items():
        reply = await edge.post(path)
        assert reply.status == status, what
        assert_documented(template, "post", reply)
    replies = [await edge.post(tenant_url(route, SLOW)) for _ in range(2)]
    assert replies[-1].status == (429 if route.reply_style == TENCENT else 500)  # the tenant's rate, exceeded
    for reply in replies:
        assert_documented(tenant, "post", reply)


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
async def test_a_body_too_large_or_too_slow_is_the_documented_reply(start: Callable[..., Any], route: Route) -> None:
    edge = await start(tenants=None, max_body_bytes=MAX_BODY_BYTES, body_read_timeout_s=BODY_READ_TIMEOUT_S)
    too_large = await edge.post(route.path, b"[" + b" " * MAX_BODY_BYTES + b"]")
    assert too_large.status == 413
    assert_documented(route.path, "post", too_large)
    head = f"POST {route.path} HTTP/1.1\r\nHost: edge\r\nContent-Length: {len(BODY) * 10}\r\nConnection: close\r\n\r\n"
    too_slow = await edge.send(head.encode() + BODY)  # the rest never comes
    assert too_slow.status == 408
    assert_documented(route.path, "post", too_slow)


@pytest.mark.parametrize("path", [ROUTES[0].path, next(r for r in ROUTES if r.reply_style != TENCENT).path, "/healthz"])
async def test_malformed_http_and_a_header_line_too_long_are_the_documented_replies(
    start: Callable[..., Any], path: str
) -> None:
    edge = await start(tenants=None)
    method = "post" if path.startswith("/callbacks/") else "get"
    malformed = await edge.send(
        f"{method.upper()} {path} HTTP/1.1\r\nHost: edge\r\nContent-Length: twelve\r\n\r\n".encode()
    )
    assert malformed.status == 400
    assert_documented(path, method, malformed)
    too_long = await edge.send(
        (
            f"{method.upper()} {path} HTTP/1.1\r\nHost: edge\r\nX-Padding: {'x' * 10_000}\r\nContent-Length: 0\r\n\r\n"
        ).encode()
    )
    assert too_long.status == 431
    assert_documented(path, method, too_long)


async def test_a_method_a_path_does_not_serve_is_405_with_allow_and_an_unknown_path_404(
    start: Callable[..., Any],
) -> None:
    edge = await start(tenants=None)
    responses = DOCUMENT["components"]["responses"]
    for raw, allowed in (
        (f"GET {ROUTES[0].path} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n", {"POST"}),
        ("DELETE /readyz HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n", {"GET", "HEAD"}),
    ):
        reply = await edge.send(raw.encode())
        assert reply.status == 405 and {m.strip() for m in reply.headers["allow"].split(",")} == allowed
        assert_documented("", "", reply, responses["MethodNotAllowed"])
    unknown = await edge.post("/callbacks/nobody")
    assert unknown.status == 404
    assert_documented("", "", unknown, responses["NotFound"])


async def test_too_many_connections_is_the_documented_503(start: Callable[..., Any]) -> None:
    edge = await start(tenants=None, edge_max_connections_per_ip=1)
    _, held = await asyncio.open_connection("127.0.0.1", edge.port)
    try:
        await asyncio.sleep(0.1)
        for route in ROUTES:
            refused = await edge.post(route.path)
            assert refused.status == 503
            assert_documented(route.path, "post", refused)
    finally:
        held.close()


async def test_a_callback_that_cannot_be_made_durable_is_the_documented_retryable_failure(
    start: Callable[..., Any],
) -> None:
    edge = await start(
        tenants=None, kafka_bootstrap=f"127.0.0.1:{free_port()}", publish_timeout_s=0.5, spool_max_bytes=0
    )
    for route in ROUTES:
        reply = await edge.post(route.path)
        assert reply.status == (503 if route.reply_style == TENCENT else 500), route.name
        assert_documented(route.path, "post", reply)
    not_ready = await edge.send(b"GET /readyz HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n")
    assert not_ready.status == 503
    assert_documented("/readyz", "get", not_ready)
