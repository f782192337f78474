"""Journal mode: following the progress topic, letting go of what is stored, and mending holes.

The normalizers and sinks say on the progress topic how far the raw topic is claimed and stored (see
:mod:`ringback.runtime.progress`). The oldest flights whose every callback is stored are let go of. A
flight that stays unstored while later ones are stored was lost downstream (a rebalance, a restart):
after ``journal_republish_after_s`` it is published again, and its event ids absorb any repeat.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor

from ringback import logs, metrics
from ringback.config import Settings
from ringback.edge.flights import Flight, Flights
from ringback.edge.journal import Journal
from ringback.edge.publisher import Publisher
from ringback.edge.trim import Trim
from ringback.runtime import kafka
from ringback.runtime.kafka import BrokerError
from ringback.runtime.progress import StoredWatermark, offsets_by_partition
from ringback.runtime.raw import RawCallback
from ringback.runtime.stream.backend import Reader

PROGRESS_POLL_MS = 200
RETRY_S = 1.0
#: How many later flights are looked at to tell a hole from a pipeline that is merely behind.
HOLE_LOOKAHEAD_FLIGHTS = 50

log = logs.get(__name__)


class Mending:
    """Promises: a flight is let go of (through ``trim``) only once every callback of it, and of every
    older flight, is stored; a trim the disk refused keeps the flights and is tried again at the next
    poll. The oldest flights up to the last unstored one before a stored one are published again once
    the hole lasted ``journal_republish_after_s``, and then replace those flights as one. Expects:
    ``run()`` as one task; ``forget()`` and then ``rewind()`` when the broker started afresh (the
    flights are cleared by their owner); ``disk`` is the journal's one thread.
    """

    def __init__(
        self, settings: Settings, journal: Journal, disk: Executor, publisher: Publisher, flights: Flights, trim: Trim
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.publisher = publisher
        self.flights = flights
        self.watermark = StoredWatermark(settings.topic_raw)
        self._disk = disk
        self._trim = trim
        self._progress: Reader | None = None
        self._hole_since: float | None = None

    async def run(self) -> None:
        while True:
            try:
                await self._follow_progress()
            except (BrokerError, OSError) as exc:
                log.warning("progress topic not readable, retrying", error=repr(exc))
                await self.stop()
                await asyncio.sleep(RETRY_S)

    async def stop(self) -> None:
        if self._progress is not None:
            consumer, self._progress = self._progress, None
            await consumer.stop()

    def forget(self) -> None:
        """The broker started afresh: what it said was stored is gone with it."""
        self._hole_since = None
        self.watermark.reset()

    async def rewind(self) -> None:
        if self._progress is not None:
            await self._progress.rewind()  # the new broker's progress topic only has new news

    async def _follow_progress(self) -> None:
        if self._progress is None:
            self._progress = await kafka.assigned_reader(self.settings, self.settings.topic_progress, from_end=True)
        for message in await self._progress.poll(PROGRESS_POLL_MS):
            self.watermark.take(message.value)
        await self.trim_stored()

    def _stored(self, flight: Flight) -> bool:
        return all(self.watermark.is_stored(p, low, high) for p, (low, high) in flight.spans.items())

    async def trim_stored(self) -> None:
        """Let go of the oldest flights whose every callback is stored; publish again an oldest flight
        that stays unstored while later ones are stored (something downstream lost it)."""
        done = self.flights.oldest_stored(self._stored)
        if done:
            if not await self._trim(done[-1].end, sum(flight.records for flight in done)):
                return  # the same flights again at the next poll
            self.flights.drop(done)
            self._hole_since = None
            self.watermark.forget_below(self.flights.lowest_offsets())
        await self._mend_hole()

    async def _mend_hole(self) -> None:
        """Flights are not stored while a later one is: after ``journal_republish_after_s``
        (stragglers of a rebalance or a restart land well within it), the oldest flights up to the last
        unstored one before the newest stored one are published again; their event ids absorb any repeat."""
        window = self.flights.window(HOLE_LOOKAHEAD_FLIGHTS + 1)
        stored = [self._stored(flight) for flight in window]
        newest_stored = max((i for i, done in enumerate(stored) if done), default=0)
        if newest_stored == 0:
            self._hole_since = None
            return
        hole_end = max(i for i in range(newest_stored) if not stored[i]) + 1  # flight 0 is never stored here
        now = time.monotonic()
        if self._hole_since is None:
            self._hole_since = now
            return
        if now - self._hole_since < self.settings.journal_republish_after_s:
            return
        hole = window[:hole_end]
        records = sum(f.records for f in hole)
        payloads, end = await asyncio.get_running_loop().run_in_executor(
            self._disk, self.journal.read, self.journal.trimmed, records
        )
        if end != hole[-1].end:
            return  # the journal and the flights disagree: leave it to the next start
        results = await asyncio.gather(
            *(self.publisher.publish(RawCallback.from_bytes(p)) for p in payloads), return_exceptions=True
        )
        if any(isinstance(r, BaseException) for r in results):
            return  # the broker is not taking them now: the next round tries again
        acks = [(meta.partition, meta.offset) for meta in results if not isinstance(meta, BaseException)]
        self.flights.replace_oldest(len(hole), Flight(end, records, offsets_by_partition(acks)))
        self._hole_since = None
        metrics.EDGE_REPUBLISHED.inc(records)
        log.warning(
            "callbacks stayed unstored while later ones were stored: published again",
            records=records,
            offsets=[{p: list(span) for p, span in f.spans.items()} for f in hole],
            grace_s=self.settings.journal_republish_after_s,
        )
