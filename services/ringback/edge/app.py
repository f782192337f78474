"""The aiohttp application: one POST route per vendor format, plus health, readiness, metrics and the API
description."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from pathlib import Path

from aiohttp import HttpVersion11, web

from ringback import logs, metrics
from ringback.config import Settings
from ringback.edge import bodies, openapi, replies
from ringback.edge.door import SECRET, TENANT, Door, Refused
from ringback.edge.in_flight import EDGE_REASONS, InFlight
from ringback.edge.intake import BROKER, JOURNAL, SPOOL, Intake, NotDurable, TooLargeForBroker
from ringback.edge.publisher import Publisher
from ringback.edge.tenant_source import TenantSource
from ringback.routes import ROUTES, Route
from ringback.runtime import kafka
from ringback.runtime.raw import RawCallback, new_ingest_id

log = logs.get(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ExpectHandler = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
CONTINUE = "100-continue"
UNSUPPORTED_EXPECT = "unsupported_expect"
PUBLISHER = web.AppKey("publisher", Publisher)
INTAKE = web.AppKey("intake", Intake)
TENANTS = web.AppKey("tenants", TenantSource)
IN_FLIGHT = web.AppKey("in_flight", InFlight)
SETTINGS = web.AppKey("settings", Settings)
OUTCOMES = (
    "accepted",
    "journaled",
    "spooled",
    bodies.TOO_LARGE,
    bodies.TOO_SLOW,
    bodies.OVERLOADED,
    "not_durable",
    bodies.BAD_ENCODING,
    bodies.UNSUPPORTED_ENCODING,
    UNSUPPORTED_EXPECT,
)
#: Refusals of a body logged (rate-limited) here; shedding is logged by the in-flight budget.
LOGGED_OUTCOMES = (
    bodies.BAD_ENCODING,
    bodies.UNSUPPORTED_ENCODING,
    bodies.TOO_LARGE,
    bodies.TOO_SLOW,
    UNSUPPORTED_EXPECT,
)
#: At most one log line per route and refusal in this many seconds.
REFUSAL_LOG_INTERVAL_S = 5.0
OUTCOME_OF = {BROKER: "accepted", JOURNAL: "journaled", SPOOL: "spooled"}


_last_logged: dict[tuple[str, str], float] = {}


def log_refusal(route: str, refusal: bodies.BodyRefused, address: str) -> None:
    now = time.monotonic()
    if now - _last_logged.get((route, refusal.outcome), float("-inf")) >= REFUSAL_LOG_INTERVAL_S:
        _last_logged[(route, refusal.outcome)] = now
        log.warning(
            "callback body refused",
            route=route,
            outcome=refusal.outcome,
            status=None if refusal.status is None else int(refusal.status),
            detail=refusal.reason,
            remote_addr=address,
        )


def callback_handler(
    route_: Route, door: Door, intake: Intake, in_flight: InFlight, settings: Settings
) -> tuple[Handler, ExpectHandler]:
    """The route's handler, and its handler of ``Expect`` (run before it, outside the middlewares)."""
    route = route_.name
    style = route_.reply_style
    requests = {outcome: metrics.EDGE_REQUESTS.labels(route, outcome) for outcome in OUTCOMES}
    latency = metrics.EDGE_REQUEST_SECONDS.labels(route)
    body_bytes = metrics.EDGE_BODY_BYTES.labels(route)

    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        who = door.admit(request, route)
        if isinstance(who, Refused):
            if who.status is None:
                return replies.rate_limited(style)
            return replies.rejected(style, who.status, who.message)
        try:
            decoder = bodies.check_announced(request, settings.max_body_bytes)
        except bodies.BodyRefused as refusal:
            return refused(refusal, who.address)
        lease = in_flight.enter(who.address)
        if isinstance(lease, str):
            return refused(bodies.BodyRefused(bodies.OVERLOADED, None, "overloaded, please retry", lease), who.address)
        try:
            try:
                body = await bodies.read_body(
                    request, decoder, lease, settings.max_body_bytes, settings.body_read_timeout_s
                )
            except bodies.BodyRefused as refusal:
                return refused(refusal, who.address)
            raw = RawCallback(
                route=route,
                ingest_id=new_ingest_id(),
                received_at_us=time.time_ns() // 1000,
                remote_addr=who.address,
                content_type=request.headers.get("Content-Type", ""),
                body=body,
                tenant=who.tenant.id if who.tenant else "",
                tenant_app_id=(who.tenant.app_id or "") if who.tenant else "",
            )
            try:
                where = await intake.accept(raw)
            except TooLargeForBroker as exc:
                requests["too_large"].inc()
                log.warning(
                    "callback too large for the broker",
                    route=route,
                    ingest_id=raw.ingest_id,
                    bytes=len(body),
                    error=str(exc),
                )
                return replies.rejected(style, 413, "body larger than the broker accepts")
            except NotDurable as exc:
                requests["not_durable"].inc()
                log.warning("callback not made durable", route=route, ingest_id=raw.ingest_id, error=str(exc))
                return replies.retryable_failure(style, "temporarily unavailable, please retry")
            requests[OUTCOME_OF[where]].inc()
            body_bytes.inc(len(body))
            latency.observe(time.perf_counter() - started)
            return replies.success(style)
        finally:
            lease.release()

    async def expect(request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue`` is answered ``100 Continue`` only for a head the body could follow: an
        announced length over the bound or an encoding the edge does not decode is refused before the
        client sends the body. Any other expectation is 417 in the vendor's shape."""
        if request.version < HttpVersion11:
            return None  # HTTP/1.0 has no interim replies: the header means nothing
        address = request.remote or ""
        if request.headers.get("Expect", "").strip().lower() != CONTINUE:
            return refused(
                bodies.BodyRefused(
                    UNSUPPORTED_EXPECT, HTTPStatus.EXPECTATION_FAILED, "unsupported Expect (only 100-continue)"
                ),
                address,
            )
        try:
            bodies.check_announced(request, settings.max_body_bytes)
        except bodies.BodyRefused as refusal:
            return refused(refusal, address)
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the reply proper has not started
        return None

    def refused(refusal: bodies.BodyRefused, address: str) -> web.StreamResponse:
        """The reply to a body not taken; the connection closes after it (the body may be half read)."""
        requests[refusal.outcome].inc()
        if refusal.outcome in LOGGED_OUTCOMES:
            log_refusal(route, refusal, address)
        if refusal.status is None:
            response = replies.retryable_failure(style, refusal.message)
        else:
            response = replies.rejected(style, refusal.status, refusal.message)
        response.force_close()
        return response

    return handle, expect


def create_app(settings: Settings, journal_dir: str | None = None) -> web.Application:
    """``journal_dir``: this edge process's journal (None = the first free ``<data_dir>/spool/edge*``)."""
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[errors_in_vendor_shape])
    publisher = Publisher(settings)
    intake = Intake(settings, publisher, Path(journal_dir) if journal_dir else None)
    tenants = TenantSource(settings.tenants_file)
    door = Door(settings, tenants)
    app[PUBLISHER] = publisher
    app[INTAKE] = intake
    app[TENANTS] = tenants

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        if tenants.open_to_anyone:
            log.warning(
                "no tenants file: the edge takes callbacks from anyone who can reach it (see "
                "docs/tenants-security.md: Going to production: tenants)"
            )
        tenants.start()
        await publisher.start()
        if publisher.ready:
            await kafka.ensure_topics_if_allowed(settings)
        await intake.start()
        yield
        await intake.stop()
        await publisher.stop()
        await tenants.stop()

    app.cleanup_ctx.append(lifecycle)
    in_flight = InFlight(
        settings.edge_max_in_flight,
        settings.edge_max_in_flight_bytes,
        settings.edge_in_flight_share_per_ip,
    )
    in_flight.export_gauges()
    app[IN_FLIGHT] = in_flight
    app[SETTINGS] = settings
    for route in ROUTES:
        handler, expect = callback_handler(route, door, intake, in_flight, settings)
        app.router.add_post(route.path, handler, expect_handler=expect)
        app.router.add_post(f"/t/{{{TENANT}}}/{{{SECRET}}}{route.path}", handler, expect_handler=expect)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get(openapi.DOCUMENT_PATH, openapi.handler(settings.schemas_dir))
    return app


@web.middleware
async def errors_in_vendor_shape(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp answers an unknown path or a wrong method in plain text; vendors get their own shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = replies.error_response(exc.status, exc.reason)
        for name in ("Allow",):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when a callback can be made durable: in journal mode the journal has room; in spool mode
    the broker answers or the journal has room — and the edge has not shed load for lack of in-flight
    room within ``edge_shed_ready_hold_s`` (one address over its share does not count)."""
    intake = request.app[INTAKE]
    broker_ok = await request.app[PUBLISHER].probe()
    journal = intake.journal
    tenants = request.app[TENANTS]
    in_flight = request.app[IN_FLIGHT]
    hold_s = request.app[SETTINGS].edge_shed_ready_hold_s
    reasons, last_s_ago = in_flight.shedding(hold_s)
    not_ready: list[str] = []  # why no callback can be taken now, one line each (empty: ready)
    refusal = intake.refusal
    if intake.journal_mode and refusal is not None:
        not_ready.append(refusal)
    elif not intake.journal_mode and not broker_ok and refusal is not None:
        not_ready.append(f"the broker does not answer and {refusal}")
    not_ready += [f"shedding load: {reason}" for reason in reasons if reason in EDGE_REASONS]
    ready = not not_ready
    body = {
        "ready": ready,
        "reasons": not_ready,
        "broker": "reachable" if broker_ok else "unreachable",
        "tenants": "none: open to anyone" if tenants.current is None else len(tenants.current.by_id),
        "journal": None
        if journal is None
        else {
            "mode": "journal" if intake.journal_mode else "spool",
            "records": journal.untrimmed_records,
            "bytes": journal.untrimmed_bytes,
            "max_bytes": journal.max_bytes,
            "unpublished": intake.unpublished_records,
            "oldest_age_s": round(intake.oldest_age_s, 3) if intake.journal_mode else None,
        },
        "in_flight": {
            "requests": in_flight.count,
            "bytes": in_flight.bytes,
            "max_requests": in_flight.limit,
            "max_bytes": in_flight.byte_limit,
        },
        "shedding": None
        if last_s_ago is None
        else {"reasons": reasons, "last_s_ago": round(last_s_ago, 3), "clears_after_s": round(hold_s - last_s_ago, 3)},
    }
    return web.json_response(body, status=200 if ready else 503)


async def metrics_view(_: web.Request) -> web.Response:
    body, content_type = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})
