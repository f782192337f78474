"""The stream driver: the one loop every consuming role runs.

Contract with a step (``Strategy``):

- ``submit(messages)`` gets each poll's messages, in offset order per partition. It may raise
  ``RetryLater`` (nothing of the poll counts: the driver rewinds to it and offers it again after a
  backoff) or ``Hold`` (the same, but nothing is fetched until the hold ends).
- ``poll()`` is called after every fetch, with or without messages, for work that is due (a batch to
  flush); it may raise ``RetryLater`` too.
- ``committable()`` says, per partition, the offset below which every message is wholly done
  (published and acknowledged, or stored). The driver commits exactly that and then calls
  ``committed(offsets)``. Nothing else is ever committed.
- ``ready_for_more()`` false means back-pressure: the driver stops fetching but keeps polling the
  consumer, so the group membership stays alive however long the step needs.
- ``poll_limits()`` says how long the next fetch may wait and how many messages it may bring.
- ``join()`` finishes everything submitted (on shutdown, after the drain).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Protocol

from ringback import logs, metrics
from ringback.runtime.drain import drain
from ringback.runtime.kafka import BrokerError
from ringback.runtime.stream.backend import Consumer, Message, Partition
from ringback.runtime.stream.errors import Hold, RetryLater
from ringback.runtime.stream.health import Health

#: How long a held or pushing-back driver waits per poll (nothing is fetched meanwhile).
IDLE_POLL_MS = 100
RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
COMMIT = "commit"

log = logs.get(__name__)


class Strategy(Protocol):
    async def submit(self, messages: list[Message]) -> None: ...

    async def poll(self) -> None: ...

    def committable(self) -> Mapping[Partition, int]: ...

    async def committed(self, offsets: Mapping[Partition, int]) -> None: ...

    def ready_for_more(self) -> bool: ...

    def poll_limits(self) -> tuple[int, int]: ...

    async def join(self) -> None: ...

    def not_ready_reasons(self) -> list[str]: ...


class StreamDriver:
    def __init__(
        self, role: str, consumer: Consumer, strategy: Strategy, health: Health, drain_timeout_s: float
    ) -> None:
        self.role = role
        self.consumer = consumer
        self.strategy = strategy
        self.health = health
        self.drain_timeout_s = drain_timeout_s
        self._committed: dict[Partition, int] = {}
        self._held_until: float | None = None
        self._paused = False
        self._retries = 0
        self._retrying: set[str] = set()  # what a RetryLater named, until a round hands messages over again

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.step()
        await self.drain()

    async def step(self) -> int:
        """One round: fetch (unless held or pushed back), hand over, commit what is finished. Returns how
        many messages were taken."""
        self._pause_if(self._held() or not self.strategy.ready_for_more())
        wait_ms, max_records = self.strategy.poll_limits()
        if self._paused:  # a poll of paused partitions may return at once: wait here, not in a busy loop
            await asyncio.sleep(IDLE_POLL_MS / 1000)
            wait_ms = 0
        messages = await self.consumer.poll(wait_ms, max_records)
        if not messages:
            await asyncio.sleep(0)  # a fetch that returned nothing at once must still let the loop run
        try:
            if messages:
                await self.strategy.submit(messages)
            await self.strategy.poll()
        except RetryLater as failure:
            self._rewind(messages)
            self._retrying.add(failure.what)
            self.health.failed(failure.what, failure.error)
            await asyncio.sleep(RETRY_BACKOFF_S[min(self._retries, len(RETRY_BACKOFF_S) - 1)])
            self._retries += 1
            return 0
        except Hold as hold:
            self._rewind(messages)
            self._held_until = hold.until
            self._pause_if(True)
            return 0
        self._retries = 0
        if messages and self._retrying:  # a round without messages proves nothing about what failed
            for what in self._retrying:
                self.health.succeeded(what)
            self._retrying.clear()
        await self.commit()
        self._report_lag()
        return len(messages)

    async def drain(self) -> None:
        """On shutdown: take what is already queued (bounded by ``drain_timeout_s``), let the step
        finish it, and commit."""

        async def take() -> int:
            return await self.step() if not self._held() else 0

        await drain(take, self.drain_timeout_s)
        await self.strategy.join()
        await self.commit()

    async def commit(self) -> None:
        offsets = {p: o for p, o in self.strategy.committable().items() if o > self._committed.get(p, -1)}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except BrokerError as exc:  # what is not committed is read again; the step's outputs are idempotent
            self.health.failed(COMMIT, f"{type(exc).__name__}: {exc}")
            return
        self.health.succeeded(COMMIT)
        self._committed.update(offsets)
        await self.strategy.committed(offsets)

    def _held(self) -> bool:
        if self._held_until is None:
            return False
        if time.monotonic() < self._held_until:
            return True
        self._held_until = None
        return False

    def _pause_if(self, pause: bool) -> None:
        if pause and not self._paused:
            self.consumer.pause()
        elif not pause and self._paused:
            self.consumer.resume()
        self._paused = pause

    def _rewind(self, messages: list[Message]) -> None:
        first: dict[Partition, int] = {}
        for message in messages:
            first.setdefault(message.partition, message.offset)
        for partition, offset in first.items():
            self.consumer.seek(partition, offset)

    def _report_lag(self) -> None:
        for partition, lag in self.consumer.lag().items():
            metrics.CONSUMER_LAG.labels(self.role, partition.topic, str(partition.index)).set(lag)

    def not_ready_reasons(self) -> list[str]:
        return self.health.not_ready_reasons() + self.strategy.not_ready_reasons()
