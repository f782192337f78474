"""A tenants file with no tenants (what a save that truncates first leaves behind) is refused at start and
on a live reload, where the tenants in force stay; an atomic save is taken."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from ringback.config import Settings
from ringback.edge.app import TENANTS, create_app
from ringback.edge.connections import EdgeRunner
from ringback.edge.server import EXIT_CONFIG_ERROR, start_edge
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker
from tests.integration.test_edge_connections import read_response
from tests.pipeline import ringback

pytestmark = pytest.mark.integration
SECRET = "saves-secret-0123456789"
NEW_SECRET = "saves-newcomer-0123456789"
TENANTS_FILE = f'allow_anonymous = false\n\n[[tenants]]\nid = "acme"\nsecret = "{SECRET}"\n'
NEWCOMER = TENANTS_FILE + f'\n[[tenants]]\nid = "newcomer"\nsecret = "{NEW_SECRET}"\n'
CDR = "/callbacks/cdr-push"
DEADLINE_S = 20.0


def reloads(result: str) -> float:
    return REGISTRY.get_sample_value("ringback_edge_tenant_reloads_total", {"result": result}) or 0.0


@pytest.mark.parametrize("content", ["", "\n", "allow_anonymous = false\n", "# being written\n"])
def test_an_edge_does_not_start_on_a_tenants_file_without_tenants(
    make_settings: Callable[..., Settings], tmp_path: Path, content: str
) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text(content, encoding="utf-8")
    settings = make_settings(tenants_file=str(path))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RINGBACK_")}, **settings.as_env()}
    log_path = tmp_path / "edge.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(ringback("edge"), env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and not (settings.run_dir / "edge.json").exists():
            assert time.monotonic() < deadline, "the edge neither started nor stopped"
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)
    output = log_path.read_text()
    assert process.returncode == EXIT_CONFIG_ERROR, output  # it did not start listening, it stopped
    assert "tenants file refused" in output and "no tenants" in output and "atomically" in output, output
    assert "edge listening" not in output


@pytest.fixture
async def start(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[Callable[[], Awaitable[tuple[int, Path, EdgeRunner]]]]:
    runners: list[EdgeRunner] = []

    async def build() -> tuple[int, Path, EdgeRunner]:
        path = tmp_path / "tenants.toml"
        path.write_text(TENANTS_FILE, encoding="utf-8")
        settings = make_settings(kafka_bootstrap=broker.bootstrap, tenants_file=str(path))
        await kafka.ensure_topics(settings)
        runner, port = await start_edge(settings, create_app(settings))
        runners.append(runner)
        return port, path, runner

    yield build
    for runner in runners:
        await runner.cleanup()


async def post(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        body = b'{"cdr":[]}'
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        return (await asyncio.wait_for(read_response(reader), DEADLINE_S))[0]
    finally:
        writer.close()


async def readyz_tenants(port: int) -> object:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return json.loads((await asyncio.wait_for(read_response(reader), DEADLINE_S))[2])["tenants"]
    finally:
        writer.close()


async def wait_until(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_truncated_tenants_file_is_refused_live_and_the_tenants_in_force_stay(
    start: Callable[[], Awaitable[tuple[int, Path, EdgeRunner]]], caplog: pytest.LogCaptureFixture
) -> None:
    port, path, runner = await start()
    acme = f"/t/acme/{SECRET}{CDR}"
    assert await post(port, acme) == 200
    refused = reloads("refused")

    with open(path, "w", encoding="utf-8"):  # what `: > tenants.toml` does, seen by the file watch
        pass
    await wait_until("the empty file was not refused", lambda: reloads("refused") > refused)
    assert await post(port, acme) == 200  # the tenants in force stay
    assert await readyz_tenants(port) == 1

    path.write_text("allow_anonymous = false\n", encoding="utf-8")  # SIGHUP's reload, on a file with no tenants
    assert runner.app[TENANTS].reload() is False
    assert reloads("refused") >= refused + 2
    assert await post(port, acme) == 200

    loaded = reloads("loaded")
    staged = path.with_name(path.name + ".tmp")  # the atomic save the README shows: write aside, then rename
    staged.write_text(NEWCOMER, encoding="utf-8")
    os.replace(staged, path)
    await wait_until("the new file was not loaded", lambda: reloads("loaded") > loaded)
    assert await post(port, f"/t/newcomer/{NEW_SECRET}{CDR}") == 200
    assert await post(port, acme) == 200
    assert await readyz_tenants(port) == 2
