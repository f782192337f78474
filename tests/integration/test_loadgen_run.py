"""`loadgen.run` against a stand-in edge that keeps every request: the URLs used (per tenant), and the
summary's counts, which the bench's zero-loss check relies on, equal to the unique events of the run."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ringback.normalizer.adapters import registry
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.ports import free_port
from ringback.runtime.raw import RawCallback
from ringback.tools import loadgen
from ringback.tools.loadgen import TAG_IN_EXTEND, Tenant, runner
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration
TENANTS = [Tenant("acme", "acme-secret-0123456789"), Tenant("globex", "globex-secret-9876543210")]


@pytest.fixture
async def edge() -> AsyncIterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """Answers 200 to every callback, anonymous or a tenant's, and keeps (tenant, route, body)."""
    seen: list[tuple[str, str, bytes]] = []

    async def callback(request: web.Request) -> web.Response:
        if request.match_info.get("tenant"):
            assert (request.match_info["tenant"], request.match_info["secret"]) in {(t.id, t.secret) for t in TENANTS}
        seen.append((request.match_info.get("tenant", ""), request.match_info["route"], await request.read()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/callbacks/{route:.+}", callback)
    app.router.add_post("/t/{tenant}/{secret}/callbacks/{route:.+}", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


def unique_tagged_events(seen: list[tuple[str, str, bytes]], tag: str) -> tuple[int, int]:
    """(events with the tag in a vendor id, SMS replies with it in extend), each event id once."""
    ctx = Context(blank_event=EventCodec.from_dir(REPO_ROOT / "schemas").blank_event())
    by_id, replies = set(), set()
    for tenant, route, body in seen:
        raw = RawCallback(route, "i", 0, "", "application/json", body, tenant=tenant)
        for event in normalize_message(raw, registry(), ctx):
            if isinstance(event, Rejection):
                continue
            if route in TAG_IN_EXTEND:
                if event["attributes"].get("extend") == tag:
                    replies.add(event["event_id"])
            elif next(
                (v for v in (event["sid"], event["call_id"], event["request_id"]) if v is not None), ""
            ).startswith(tag):
                by_id.add(event["event_id"])
    return len(by_id), len(replies)


@pytest.mark.parametrize("tenants", [[], TENANTS], ids=["anonymous", "tenants"])
async def test_the_counts_are_the_unique_events_sent_and_the_urls_are_the_tenants(
    edge: tuple[str, list[tuple[str, str, bytes]]], tenants: list[Tenant]
) -> None:
    url, seen = edge
    plan = loadgen.LoadPlan(
        url=url, requests=1500, connections=4, resend_share=0.1, malformed_share=0.05, tenants=tenants, apps=4
    )
    summary = await loadgen.run(plan, show_progress=False)
    assert summary.sent == summary.accepted == len(seen) == 1500 and summary.failed == 0
    assert summary.resends > 50 and summary.malformed > 20
    assert (summary.expected_events, summary.expected_replies) == unique_tagged_events(seen, plan.tag)
    assert summary.expected_replies > 0
    assert {tenant for tenant, _, _ in seen} == ({t.id for t in tenants} or {""})
    assert set(summary.by_tenant) == ({t.id for t in tenants} or {""})
    assert "secret" not in summary.render() + str(summary.as_dict())


async def test_resends_repeat_recent_bodies_and_the_counts_stay_exact(
    edge: tuple[str, list[tuple[str, str, bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = edge
    monkeypatch.setattr(runner, "RESEND_WINDOW", 50)
    plan = loadgen.LoadPlan(url=url, requests=1500, connections=4, resend_share=0.2, malformed_share=0.02)
    summary = await loadgen.run(plan, show_progress=False)
    assert summary.resends > 200 and summary.accepted == 1500
    assert (summary.expected_events, summary.expected_replies) == unique_tagged_events(seen, plan.tag)
    first_seen: dict[bytes, int] = {}
    for index, (_, _, body) in enumerate(seen):
        if not well_formed(body):  # cut-short bodies are never resent, and two short cuts can coincide ("[{")
            continue
        if body in first_seen:  # a resend: one of the last 50 well-formed bodies (and the few in flight)
            assert index - first_seen[body] < 50 * 2 + 20, index - first_seen[body]
        else:
            first_seen[body] = index


def well_formed(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True
