"""The aiohttp application: one POST route per vendor format, plus health, readiness and metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ringback import logs, metrics
from ringback.config import Settings
from ringback.edge import replies
from ringback.normalizer.adapters import Adapter, registry
from ringback.runtime import kafka
from ringback.runtime.raw import RawCallback, new_ingest_id

log = logs.get(__name__)

READINESS_PROBE_TIMEOUT_S = 1.0
PRODUCER_RETRY_S = 1.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Publisher:
    """Publishes raw callbacks and waits for the broker's acks=all acknowledgement."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.producer is not None

    async def start(self) -> None:
        """Connect now if the broker answers; otherwise keep trying in the background."""
        self._starting = asyncio.create_task(self._connect_until_up())
        await asyncio.wait({self._starting}, timeout=self.settings.publish_timeout_s)

    async def _connect_until_up(self) -> None:
        while True:
            producer = kafka.producer(self.settings)
            try:
                await producer.start()
            except KafkaError as exc:
                await producer.stop()
                log.warning("broker not reachable, retrying", error=str(exc))
                await asyncio.sleep(PRODUCER_RETRY_S)
                continue
            self.producer = producer
            log.info("publisher connected", bootstrap=self.settings.kafka_bootstrap, topic=self.settings.topic_raw)
            return

    async def publish(self, raw: RawCallback) -> None:
        if self.producer is None:
            raise KafkaError("not connected to the broker yet")
        delivery = await self.producer.send(
            self.settings.topic_raw, value=raw.body, key=raw.ingest_id.encode(), headers=raw.headers()
        )
        await delivery

    async def probe(self) -> bool:
        if self.producer is None:
            return False
        try:
            return bool(await asyncio.wait_for(self.producer.client.force_metadata_update(), READINESS_PROBE_TIMEOUT_S))
        except (asyncio.TimeoutError, KafkaError):
            return False

    async def stop(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        if self.producer is not None:
            await self.producer.stop()  # flushes what is in flight
            self.producer = None


PUBLISHER = web.AppKey("publisher", Publisher)


def callback_handler(adapter: Adapter, publisher: Publisher, settings: Settings) -> Handler:
    route = adapter.route
    style = adapter.reply_style
    requests = {outcome: metrics.EDGE_REQUESTS.labels(route, outcome) for outcome in ("accepted", "too_large", "not_durable")}
    latency = metrics.EDGE_REQUEST_SECONDS.labels(route)
    body_bytes = metrics.EDGE_BODY_BYTES.labels(route)

    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            requests["too_large"].inc()
            return replies.rejected(style, 413, f"body larger than {settings.max_body_bytes} bytes")
        raw = RawCallback(
            route=route,
            ingest_id=new_ingest_id(),
            received_at_us=time.time_ns() // 1000,
            remote_addr=request.remote or "",
            content_type=request.headers.get("Content-Type", ""),
            body=body,
        )
        try:
            await asyncio.wait_for(publisher.publish(raw), settings.publish_timeout_s)
        except (asyncio.TimeoutError, KafkaError) as exc:
            requests["not_durable"].inc()
            log.warning("callback not made durable", route=route, ingest_id=raw.ingest_id, error=repr(exc))
            return replies.retryable_failure(style, "temporarily unavailable, please retry")
        requests["accepted"].inc()
        body_bytes.inc(len(body))
        latency.observe(time.perf_counter() - started)
        return replies.success(style)

    return handle


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)
    publisher = Publisher(settings)
    app[PUBLISHER] = publisher

    async def publisher_context(_: web.Application) -> AsyncIterator[None]:
        await publisher.start()
        yield
        await publisher.stop()

    app.cleanup_ctx.append(publisher_context)

    for adapter in registry().values():
        app.router.add_post(adapter.path, callback_handler(adapter, publisher, settings))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    publisher = request.app[PUBLISHER]
    broker_ok = await publisher.probe()
    return web.json_response({"ready": broker_ok, "broker": "reachable" if broker_ok else "unreachable"}, status=200 if broker_ok else 503)


async def metrics_view(_: web.Request) -> web.Response:
    body, content_type = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})
