"""Publishing raw callbacks to the broker, acknowledged with acks=all."""

from __future__ import annotations

import asyncio

from ringback import logs
from ringback.config import Settings
from ringback.runtime import kafka
from ringback.runtime.kafka import BrokerError
from ringback.runtime.raw import RawCallback
from ringback.runtime.stream.backend import Acknowledgement, Producer

READINESS_PROBE_TIMEOUT_S = 1.0
PRODUCER_RETRY_S = 1.0

log = logs.get(__name__)


class Publisher:
    """Publishes raw callbacks and waits for the broker's acks=all acknowledgement."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: Producer | None = None
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
            except BrokerError as exc:
                await producer.stop()
                log.warning("broker not reachable, retrying", error=str(exc))
                await asyncio.sleep(PRODUCER_RETRY_S)
                continue
            self.producer = producer
            log.info("publisher connected", bootstrap=self.settings.kafka_bootstrap, topic=self.settings.topic_raw)
            return

    async def publish(self, raw: RawCallback) -> Acknowledgement:
        """Publish and wait for the broker's acknowledgement; returns where the callback landed."""
        if self.producer is None:
            raise BrokerError("not connected to the broker yet")
        delivery = await self.producer.send(
            self.settings.topic_raw, value=raw.body, key=raw.ingest_id.encode(), headers=raw.headers()
        )
        return await delivery

    async def publish_to(self, topic: str, value: bytes) -> None:
        if self.producer is None:
            raise BrokerError("not connected to the broker yet")
        await (await self.producer.send(topic, value=value))

    async def probe(self) -> bool:
        if self.producer is None:
            return False
        try:
            return await asyncio.wait_for(kafka.refresh_metadata(self.producer), READINESS_PROBE_TIMEOUT_S)
        except (TimeoutError, BrokerError):
            return False

    async def stop(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        if self.producer is not None:
            await self.producer.stop()  # flushes what is in flight
            self.producer = None
