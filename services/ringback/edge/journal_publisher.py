"""The journal's publisher: sends what the journal holds to the raw topic, in order, oldest first.

After every start and every broker that started afresh it publishes again everything not let go of;
the event ids absorb the repeats downstream. In journal mode each acknowledged batch becomes a flight
(let go of once stored, see :mod:`ringback.edge.mending`); in spool mode a batch the broker has is let
go of at once. A callback the broker will never take (too large) leaves the journal for a quarantine
folder, so it cannot hold up the ones behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path

from ringback import logs, metrics
from ringback.edge.flights import Flight, Flights
from ringback.edge.journal import Journal, Position
from ringback.edge.publisher import Publisher
from ringback.edge.trim import Trim
from ringback.runtime.kafka import MessageTooLarge
from ringback.runtime.progress import offsets_by_partition
from ringback.runtime.raw import RawCallback

PUBLISH_BATCH = 500
#: A publish batch stops at this many body bytes (large callbacks would otherwise make 500 of them huge).
PUBLISH_BATCH_BYTES = 8 * 1024 * 1024
QUARANTINE_DIR = "quarantine"
IDLE_WAIT_S = 0.2
RETRY_S = 1.0

log = logs.get(__name__)


def fsync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JournalPublisher:
    """Promises: every callback the journal holds is published at least once after ``start()`` and
    after every ``broker_restarted()``; batches are published in journal order, and one the broker did
    not wholly acknowledge is published again. In journal mode each acknowledged batch is added to
    ``flights``; in spool mode it is let go of through ``trim`` (a trim the disk refused is owed and
    tried again before anything else). ``unpublished_records`` counts what the journal holds beyond the
    flights. Expects: ``run()`` as one task after ``start()``; ``appended`` set whenever the journal
    grew; ``forget_broker`` forgets everything learned from the old broker (it runs at a reset, between
    batches); ``disk`` is the journal's one thread.
    """

    def __init__(
        self,
        journal: Journal,
        disk: Executor,
        publisher: Publisher,
        flights: Flights,
        trim: Trim,
        *,
        journal_mode: bool,
        appended: asyncio.Event,
        forget_broker: Callable[[], Awaitable[None]],
        published: Callable[[], None],
    ) -> None:
        self.journal = journal
        self.publisher = publisher
        self.flights = flights
        self.journal_mode = journal_mode
        self._disk = disk
        self._trim = trim
        self._appended = appended
        self._forget_broker = forget_broker
        self._published_changed = published
        self.published: Position | None = None  # how far the journal has been sent
        self.owed_trim: tuple[Position, int] | None = None  # spool mode: published, not yet let go of
        self._highest_ack: dict[int, int] = {}
        self._reset_requested = False

    def start(self) -> None:
        self.published = self.journal.trimmed  # a start publishes everything not let go of

    def broker_restarted(self) -> None:
        self._reset_requested = True

    @property
    def unpublished_records(self) -> int:
        if self.published is None:
            return 0
        return max(0, self.journal.untrimmed_records - self.flights.records)

    async def run(self) -> None:
        while True:
            try:
                await self._step()
            except OSError as exc:  # the journal's disk: nothing was let go of, the same callbacks again later
                log.warning("publishing from the journal paused: the journal could not be read", error=repr(exc))
                await asyncio.sleep(RETRY_S)

    async def _step(self) -> None:
        if self._reset_requested:
            await self._reset()
        if self.owed_trim is not None:
            await self.trim_owed()
        if self.published is None or self.published >= self.journal.end or not self.publisher.ready:
            self._appended.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._appended.wait(), IDLE_WAIT_S)
        elif not await self._publish_batch():
            await asyncio.sleep(RETRY_S)

    async def _publish_batch(self) -> bool:
        """Publish the next callbacks of the journal; False when the broker did not take them all."""
        assert self.published is not None
        loop = asyncio.get_running_loop()
        payloads, end = await loop.run_in_executor(
            self._disk, self.journal.read, self.published, PUBLISH_BATCH, PUBLISH_BATCH_BYTES
        )
        if not payloads:
            return True
        raws = [RawCallback.from_bytes(p) for p in payloads]
        del payloads
        try:
            try:
                published = await self.publisher.publish_all(raws)
                never = published.too_large
                acks = [(partition, offset) for partition, low, high in published.spans for offset in (low, high)]
            except MessageTooLarge:  # the broker refused a batch for its size: which callback, one at a time
                never, acks = await self._publish_one_by_one(raws)
        except Exception as failure:  # whatever it was, the batch is not published: all of it again later
            log.warning("publishing from the journal paused: broker did not acknowledge", error=repr(failure))
            return False  # the whole batch again later; what did get through is absorbed by the event ids
        if never:
            await loop.run_in_executor(self._disk, self._quarantine, never)
        if self._offsets_went_back(acks):
            self.broker_restarted()
            return True
        self.published = end
        if self.journal_mode:
            self.flights.add(Flight(end, len(raws), offsets_by_partition(acks)))
        else:  # spool mode: the broker has it, that is enough
            owed = self.owed_trim[1] if self.owed_trim is not None else 0
            self.owed_trim = (end, owed + len(raws))
            await self.trim_owed()
            metrics.EDGE_SPOOL_DRAINED.inc(len(raws))
        metrics.EDGE_PUBLISHED.inc(len(raws))
        self._published_changed()
        return True

    async def _publish_one_by_one(self, raws: list[RawCallback]) -> tuple[list[RawCallback], list[tuple[int, int]]]:
        """Each callback published alone: those the broker refuses for their size, and the others' places.
        Raises ``BrokerError`` when any other was not acknowledged."""
        results = await asyncio.gather(*(self.publisher.publish(raw) for raw in raws), return_exceptions=True)
        never = [raw for raw, result in zip(raws, results, strict=True) if isinstance(result, MessageTooLarge)]
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, MessageTooLarge):
                raise result
        acks = [(meta.partition, meta.offset) for meta in results if not isinstance(meta, BaseException)]
        return never, acks

    def _offsets_went_back(self, acks: list[tuple[int, int]]) -> bool:
        """A broker that acknowledges below what it acknowledged before has started afresh."""
        went_back = False
        for partition, offset in acks:
            if offset < self._highest_ack.get(partition, -1):
                went_back = True
            self._highest_ack[partition] = max(offset, self._highest_ack.get(partition, -1))
        return went_back

    async def _reset(self) -> None:
        self._reset_requested = False
        self.owed_trim = None  # what the old broker had is published again, and let go of after that
        self.published = self.journal.trimmed
        self.flights.clear()
        self._highest_ack.clear()
        await self._forget_broker()
        metrics.EDGE_BROKER_RESETS.inc()
        log.warning(
            "broker started afresh: publishing again everything the journal holds",
            records=self.journal.untrimmed_records,
        )

    async def trim_owed(self) -> None:
        """Spool mode: let go of what the broker has; kept owed when the disk refused."""
        assert self.owed_trim is not None
        if await self._trim(*self.owed_trim):
            self.owed_trim = None

    def _quarantine(self, raws: list[RawCallback]) -> None:
        """Callbacks the broker will never take (too large) leave the journal for a folder of their own,
        so they cannot hold up the ones behind them; they stay on disk for an operator."""
        folder = self.journal.directory / QUARANTINE_DIR
        folder.mkdir(exist_ok=True)
        for raw in raws:
            path = folder / f"{raw.ingest_id}.raw"
            try:
                with open(path, "wb") as handle:
                    handle.write(raw.to_bytes())
                    handle.flush()
                    os.fsync(handle.fileno())
                fsync_directory(folder)
            except OSError:
                path.unlink(missing_ok=True)  # no half copy: the journal keeps it and it is tried again
                raise
            metrics.EDGE_QUARANTINED.inc()
            log.error(
                "callback too large for the broker: quarantined",
                ingest_id=raw.ingest_id,
                route=raw.route,
                bytes=len(raw.body),
                path=str(path),
            )
