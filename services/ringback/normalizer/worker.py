"""The normalizer role: the stream driver on the raw topic, running the normalize step."""

from __future__ import annotations

import asyncio

from ringback import logs
from ringback.config import Settings
from ringback.normalizer.guard import DeadLetterGuard
from ringback.normalizer.step import NormalizeStep
from ringback.runtime import kafka
from ringback.runtime.kafka import KafkaConsumer
from ringback.runtime.stream.backend import Producer
from ringback.runtime.stream.driver import StreamDriver
from ringback.runtime.stream.health import Health

ROLE = "normalizer"

log = logs.get(__name__)


class Normalizer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.guard = DeadLetterGuard(
            settings.dlq_guard_ratio,
            settings.dlq_guard_window,
            settings.dlq_guard_min_requests,
            settings.dlq_guard_min_distinct,
            settings.dlq_guard_pause_s,
        )
        self.health = Health(ROLE, settings.retry_alarm_after_s)
        self.producer: Producer | None = None
        self.consumer = KafkaConsumer(settings, [settings.topic_raw], settings.normalizer_group)
        self.step: NormalizeStep | None = None
        self.driver: StreamDriver | None = None
        self.healthy = False

    async def start(self) -> None:
        await kafka.ensure_topics_if_allowed(self.settings)
        self.producer = kafka.producer(self.settings)
        await self.producer.start()
        await self.consumer.start()
        self.step = NormalizeStep(self.settings, self.producer, self.guard)
        self.driver = StreamDriver(ROLE, self.consumer, self.step, self.health, self.settings.drain_timeout_s)
        self.healthy = True
        log.info(
            "normalizer consuming",
            topic=self.settings.topic_raw,
            group=self.settings.normalizer_group,
            routes=sorted(self.step.adapters),
        )

    async def stop(self) -> None:
        self.healthy = False
        await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def run(self, stop: asyncio.Event) -> None:
        assert self.driver is not None
        await self.driver.run(stop)

    async def process_poll(self) -> int:
        """One round of the driver (tests and benchmarks step it by hand)."""
        assert self.driver is not None
        return await self.driver.step()

    async def drain(self) -> None:
        assert self.driver is not None
        await self.driver.drain()

    def ready_reasons(self) -> list[str]:
        return self.driver.not_ready_reasons() if self.driver is not None else ["starting"]
