"""allow_ips behind a trusted load balancer on a live edge: the address is the rightmost untrusted entry
of the one configured forwarding header; what a client writes elsewhere is not believed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from ringback.config import Settings
from ringback.edge.app import create_app
from ringback.edge.connections import EdgeRunner
from ringback.edge.server import start_edge
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker
from tests.integration.test_edge_connections import read_response
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.integration
SECRET = "proxies-secret-0123456789"
ALLOWED = "198.51.100.7"
OUTSIDER = "203.0.113.66"
TENANTS_FILE = f"""allow_anonymous = false

[[tenants]]
id = "fenced"
secret = "{SECRET}"
allow_ips = ["198.51.100.0/24"]
"""
URL = f"/t/fenced/{SECRET}/callbacks/cdr-push"


@pytest.fixture
async def start(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[tuple[int, Settings]]]]:
    runners: list[EdgeRunner] = []

    async def build(**overrides: object) -> tuple[int, Settings]:
        (tmp_path / "tenants.toml").write_text(TENANTS_FILE, encoding="utf-8")
        settings = make_settings(
            kafka_bootstrap=broker.bootstrap,
            tenants_file=str(tmp_path / "tenants.toml"),
            trusted_proxies="127.0.0.1/32, 10.0.0.0/8",  # the test plays the load balancer
            **overrides,
        )
        await kafka.ensure_topics(settings)
        runner, port = await start_edge(settings, create_app(settings))
        runners.append(runner)
        return port, settings

    yield build
    for runner in runners:
        await runner.cleanup()


async def post(port: int, headers: list[tuple[str, str]], tag: str = "x") -> int:
    body = f'{{"cdr":[{{"requestid":"{tag}"}}]}}'.encode()
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    head = f"POST {URL} HTTP/1.1\r\nHost: edge\r\n{lines}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        return (await asyncio.wait_for(read_response(reader), 20))[0]
    finally:
        writer.close()


SPOOFS = {
    "Forwarded beside the balancer's X-Forwarded-For": [("Forwarded", f"for={ALLOWED}"), ("X-Forwarded-For", OUTSIDER)],
    "the client's own X-Forwarded-For entry": [("X-Forwarded-For", f"{ALLOWED}, {OUTSIDER}")],
    "a separate X-Forwarded-For line": [("X-Forwarded-For", ALLOWED), ("X-Forwarded-For", OUTSIDER)],
    "a trusted-looking hop in front": [("X-Forwarded-For", f"{ALLOWED}, 10.0.0.5, {OUTSIDER}, 10.0.0.9")],
    "garbage in front": [("X-Forwarded-For", f'{ALLOWED}, "]]garbage, {OUTSIDER}')],
    "garbage the balancer appended": [("X-Forwarded-For", f"{ALLOWED}, unknown")],
    "Forwarded only (not the configured header)": [("Forwarded", f"for={ALLOWED}")],
}


async def test_a_client_cannot_spoof_an_allowed_address_through_the_balancer(
    start: Callable[..., Awaitable[tuple[int, Settings]]],
) -> None:
    port, _ = await start()
    for what, headers in SPOOFS.items():
        assert await post(port, headers) == 403, what
    assert await post(port, [("X-Forwarded-For", f"{OUTSIDER}, {ALLOWED}, 10.0.0.3")]) == 200  # two trusted hops


async def test_with_forwarded_configured_x_forwarded_for_is_ignored(
    start: Callable[..., Awaitable[tuple[int, Settings]]],
) -> None:
    port, _ = await start(forwarded_header="forwarded")
    assert await post(port, [("X-Forwarded-For", ALLOWED), ("Forwarded", f"for={OUTSIDER}")]) == 403
    assert await post(port, [("Forwarded", f"for={ALLOWED}, for={OUTSIDER}")]) == 403
    assert await post(port, [("X-Forwarded-For", OUTSIDER), ("Forwarded", f'for="{ALLOWED}:4711";proto=https')]) == 200


async def test_an_ipv4_mapped_address_matches_an_ipv4_allow_ips_entry_and_is_stored_as_ipv4(
    start: Callable[..., Awaitable[tuple[int, Settings]]],
) -> None:
    port, settings = await start()
    assert await post(port, [("X-Forwarded-For", f"::ffff:{ALLOWED}")], tag="mapped") == 200
    assert await post(port, [("X-Forwarded-For", f"::ffff:{OUTSIDER}")]) == 403
    (record,) = await read_topic(
        settings.kafka_bootstrap, settings.topic_raw, expected=1, where=lambda r: b"mapped" in (r.value or b"")
    )
    assert dict(record.headers)["remote_addr"] == ALLOWED.encode()
