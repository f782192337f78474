"""Making a callback durable before the vendor hears success, and getting it to the broker.

Two modes, chosen by ``edge_journal`` (``auto`` = journal mode with the embedded broker):

- **journal mode**: every callback is appended to the edge's journal and fsync'd, then answered. A
  publisher sends the journal to the raw topic in order; the journal lets go of a callback only once
  the progress topic says everything that came from it is stored in ClickHouse (see
  :mod:`ringback.runtime.progress`). A broker that loses what it held (the embedded one killed), a
  crash of any process, or all of them at once: what the journal still holds is published again, and
  the event ids absorb the repeats.
- **spool mode** (an external, replicated Kafka): a callback is answered once the broker acknowledged it
  (acks=all); only when the broker does not answer in time is it appended to the journal instead, which
  then acts as a spool: later callbacks queue behind it and the publisher drains it oldest first,
  letting go of each callback as soon as the broker has it.

Appends from concurrent requests are grouped into one write and one fsync (group commit), on a thread
of their own so the event loop never waits on the disk. The loops hand each batch to a method of its
own, so nothing of a batch (bodies, futures, exceptions with their frames) stays referenced while a
loop waits for the next one.

A disk that fails (full, or an I/O error) fails the whole group with a retryable error, and the edge is
not ready until the disk has room again; a trim that could not be written is tried again, and nothing
is let go of until it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import itertools
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from ringback import logs, metrics
from ringback.config import Settings
from ringback.edge.journal import Journal, JournalFull, Position
from ringback.edge.publisher import Publisher
from ringback.runtime import kafka
from ringback.runtime.accepted import AcceptedCounts
from ringback.runtime.ledger import EDGE_ACCEPTED, Ledger
from ringback.runtime.memory import release_free_memory
from ringback.runtime.progress import StoredWatermark, offsets_by_partition
from ringback.runtime.raw import RawCallback

PUBLISH_BATCH = 500
#: A publish batch stops at this many body bytes (large callbacks would otherwise make 500 of them huge).
PUBLISH_BATCH_BYTES = 8 * 1024 * 1024
QUARANTINE_DIR = "quarantine"
IDLE_WAIT_S = 0.2
RETRY_S = 1.0
GROUP_COMMIT_MAX = 1000
PROGRESS_POLL_MS = 200
GAUGE_INTERVAL_S = 1.0
#: How many later flights are looked at to tell a hole from a pipeline that is merely behind.
HOLE_LOOKAHEAD_FLIGHTS = 50
SPOOL_SLOTS = 64

JOURNAL = "journal"
BROKER = "broker"
SPOOL = "spool"

log = logs.get(__name__)


class NotDurable(RuntimeError):
    """Neither the broker nor the journal could take the callback: the vendor must retry."""


class TooLargeForBroker(RuntimeError):
    """The broker refuses a message this size, now and on every retry."""


def claim_spool_dir(root: Path) -> tuple[Path, int]:
    """The first journal folder no other live edge process holds (``edge``, ``edge-1``, …).

    Edge processes sharing a port (SO_REUSEPORT) each need a journal of their own; an edge that starts
    after a crash takes over a folder whose owner is gone, and publishes what it left behind.
    """
    root.mkdir(parents=True, exist_ok=True)
    for slot in range(SPOOL_SLOTS):
        folder = root / ("edge" if slot == 0 else f"edge-{slot}")
        folder.mkdir(exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return folder, fd  # the lock holds while fd is open
    raise RuntimeError(f"all {SPOOL_SLOTS} journal folders under {root} are in use")


def fsync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Flight:
    """Callbacks published together: where they end in the journal, and where they landed."""

    end: Position
    records: int
    spans: dict[int, tuple[int, int]]  # raw-topic partition -> (lowest, highest) offset


class Intake:
    def __init__(self, settings: Settings, publisher: Publisher, journal_dir: Path | None) -> None:
        self.settings = settings
        self.publisher = publisher
        self.journal_mode = settings.journal_enabled
        self.journal: Journal | None = None
        self._dir_lock: int | None = None
        if settings.spool_max_bytes > 0:
            if journal_dir is None:
                journal_dir, self._dir_lock = claim_spool_dir(settings.data_path / "spool")
            self.journal = Journal(journal_dir, settings.spool_max_bytes)
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._queue: asyncio.Queue[tuple[bytes, asyncio.Future[None]]] = asyncio.Queue()
        self._appended = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._refused_since_trim = False  # the journal turned a callback away and has not let go of any since
        self._disk_needs: int | None = None  # the disk failed an append of this many bytes; None: it writes
        self._owed_trim: tuple[Position, int] | None = None  # spool mode: published, not yet let go of
        self._trim_failing = False
        self._published: Position | None = None  # journal mode: how far the journal has been sent
        self._flights: deque[Flight] = deque()
        self._highest_ack: dict[int, int] = {}
        self.watermark = StoredWatermark(settings.topic_raw)
        self._progress: AIOKafkaConsumer | None = None
        self._reset_requested = False
        self._hole_since: float | None = None
        self.oldest_age_s = 0.0  # journal mode: refreshed every GAUGE_INTERVAL_S
        self.ledger = Ledger()
        #: Journal mode: what was acknowledged is counted from the journal's frames (durable), not in memory.
        self.accepted = AcceptedCounts.open(self.journal) if self.journal_mode and self.journal is not None else None
        self._update_gauges()

    # --- lifecycle ---
    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._ledger_loop()))
        if self.journal is None:
            return
        self._published = self.journal.trimmed  # a start publishes everything not let go of
        self._tasks += [asyncio.create_task(self._write_loop()), asyncio.create_task(self._publish_loop())]
        if self.journal_mode:
            self._tasks += [asyncio.create_task(self._progress_loop()), asyncio.create_task(self._gauge_loop())]
        if not self.journal.is_empty:
            log.warning(
                "journal holds callbacks from before; publishing them first",
                records=self.journal.untrimmed_records,
                bytes=self.journal.untrimmed_bytes,
            )

    async def stop(self) -> None:
        await self.flush_ledger()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._progress is not None:
            await self._progress.stop()
        if self.journal is not None:
            self.journal.close()
        if self._dir_lock is not None:
            os.close(self._dir_lock)
        self._disk.shutdown(wait=True)

    def broker_restarted(self) -> None:
        """The broker lost what it held (the embedded one restarted): publish everything not let go of
        again and forget every offset learned from the old broker."""
        self._reset_requested = True

    @property
    def accepting(self) -> bool:
        """Whether a callback can be made durable now (for readiness)."""
        if self.journal is None:
            return False
        if self._disk_needs is not None and not self._disk_has_room(self._disk_needs):
            return False
        return not self._refused_since_trim and self.journal.untrimmed_bytes < self.journal.max_bytes

    def _disk_has_room(self, needed: int) -> bool:
        assert self.journal is not None
        try:
            return self.journal.free_bytes() >= needed
        except OSError:
            return False

    @property
    def unpublished_records(self) -> int:
        if self.journal is None or self._published is None:
            return 0
        return max(0, self.journal.untrimmed_records - sum(f.records for f in self._flights))

    # --- accepting ---
    async def accept(self, raw: RawCallback) -> str:
        """Make ``raw`` durable; returns where ("journal", "broker" or "spool"), raises NotDurable."""
        where = await self._make_durable(raw)
        if self.accepted is None:
            self.ledger.count(EDGE_ACCEPTED, raw.route, raw.received_at_us, tenant=raw.tenant)
        return where

    async def _make_durable(self, raw: RawCallback) -> str:
        if self.journal_mode:
            await self._append(raw)
            return JOURNAL
        if self.journal is not None and (not self.journal.is_empty or not self.publisher.ready):
            await self._append(raw)
            metrics.EDGE_SPOOLED.inc()
            return SPOOL
        try:
            async with asyncio.timeout(self.settings.publish_timeout_s):  # unlike wait_for, no task per request
                await self.publisher.publish(raw)
            return BROKER
        except MessageSizeTooLargeError as exc:
            raise TooLargeForBroker(str(exc)) from exc
        except (TimeoutError, KafkaError) as exc:
            if self.journal is None:
                raise NotDurable(f"broker did not acknowledge: {exc!r}") from exc
            await self._append(raw)
            metrics.EDGE_SPOOLED.inc()
            return SPOOL

    async def _append(self, raw: RawCallback) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((raw.to_bytes(), done))
        try:
            await done
        except JournalFull as exc:
            raise NotDurable(f"journal cannot take it: {exc}") from None

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            await self._write_batch(first)

    async def _write_batch(self, first: tuple[bytes, asyncio.Future[None]]) -> None:
        assert self.journal is not None
        batch = [first]
        while not self._queue.empty() and len(batch) < GROUP_COMMIT_MAX:
            batch.append(self._queue.get_nowait())
        payloads = [payload for payload, _ in batch]
        try:
            await asyncio.get_running_loop().run_in_executor(self._disk, self.journal.append, payloads)
        except Exception as exc:  # whatever it was, not one request of the batch may hear success
            self._refused(exc, sum(len(p) for p in payloads))
            reason = f"{type(exc).__name__}: {exc}"
            for _, done in batch:
                if not done.done():  # a fresh error each: no traceback, so no frame keeps the bodies alive
                    done.set_exception(JournalFull(reason))
        else:
            if self._disk_needs is not None:
                log.info("journal writes again")
                self._disk_needs = None
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
            self._appended.set()
        self._update_gauges()

    def _refused(self, exc: Exception, size: int) -> None:
        if isinstance(exc, JournalFull):
            self._refused_since_trim = True
            return
        if self._disk_needs is None:
            log.error(
                "journal cannot write: answering retryable failures until the disk has room",
                error=repr(exc),
                directory=str(self.journal.directory) if self.journal is not None else None,
            )
        self._disk_needs = size

    # --- publishing ---
    async def _publish_loop(self) -> None:
        while True:
            try:
                await self._publish_step()
            except OSError as exc:  # the journal's disk: nothing was let go of, the same callbacks again later
                log.warning("publishing from the journal paused: the journal could not be read", error=repr(exc))
                await asyncio.sleep(RETRY_S)

    async def _publish_step(self) -> None:
        assert self.journal is not None
        if self._reset_requested:
            await self._reset()
        if self._owed_trim is not None:
            await self._trim_owed()
        if self._published is None or self._published >= self.journal.end or not self.publisher.ready:
            self._appended.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._appended.wait(), IDLE_WAIT_S)
        elif not await self._publish_batch():
            await asyncio.sleep(RETRY_S)

    async def _publish_batch(self) -> bool:
        """Publish the next callbacks of the journal; False when the broker did not take them all."""
        assert self.journal is not None and self._published is not None
        loop = asyncio.get_running_loop()
        payloads, end = await loop.run_in_executor(
            self._disk, self.journal.read, self._published, PUBLISH_BATCH, PUBLISH_BATCH_BYTES
        )
        if not payloads:
            return True
        raws = [RawCallback.from_bytes(p) for p in payloads]
        del payloads
        results = await asyncio.gather(*(self.publisher.publish(raw) for raw in raws), return_exceptions=True)
        never = [raw for raw, result in zip(raws, results, strict=True) if isinstance(result, MessageSizeTooLargeError)]
        failure = next(
            (r for r in results if isinstance(r, BaseException) and not isinstance(r, MessageSizeTooLargeError)), None
        )
        if failure is not None:
            log.warning("publishing from the journal paused: broker did not acknowledge", error=repr(failure))
            return False  # the whole batch again later; what did get through is absorbed by the event ids
        if never:
            await loop.run_in_executor(self._disk, self._quarantine, never)
        acks = [(meta.partition, meta.offset) for meta in results if not isinstance(meta, BaseException)]
        if self._offsets_went_back(acks):
            self.broker_restarted()
            return True
        self._published = end
        if self.journal_mode:
            self._flights.append(Flight(end, len(raws), offsets_by_partition(acks)))
        else:  # spool mode: the broker has it, that is enough
            owed = self._owed_trim[1] if self._owed_trim is not None else 0
            self._owed_trim = (end, owed + len(raws))
            await self._trim_owed()
            metrics.EDGE_SPOOL_DRAINED.inc(len(raws))
        metrics.EDGE_PUBLISHED.inc(len(raws))
        self._update_gauges()
        return True

    def _offsets_went_back(self, acks: list[tuple[int, int]]) -> bool:
        """A broker that acknowledges below what it acknowledged before has started afresh."""
        went_back = False
        for partition, offset in acks:
            if offset < self._highest_ack.get(partition, -1):
                went_back = True
            self._highest_ack[partition] = max(offset, self._highest_ack.get(partition, -1))
        return went_back

    async def _reset(self) -> None:
        assert self.journal is not None
        self._reset_requested = False
        self._owed_trim = None  # what the old broker had is published again, and let go of after that
        self._published = self.journal.trimmed
        self._flights.clear()
        self._hole_since = None
        self._highest_ack.clear()
        self.watermark.reset()
        if self.accepted is not None:
            await asyncio.get_running_loop().run_in_executor(self._disk, self.accepted.say_all_again)
        if self._progress is not None:
            await self._progress.seek_to_beginning()  # the new broker's progress topic only has new news
        metrics.EDGE_BROKER_RESETS.inc()
        log.warning(
            "broker started afresh: publishing again everything the journal holds",
            records=self.journal.untrimmed_records,
        )

    # --- letting go (journal mode) ---
    async def _progress_loop(self) -> None:
        while True:
            try:
                await self._follow_progress()
            except (KafkaError, OSError) as exc:
                log.warning("progress topic not readable, retrying", error=repr(exc))
                await self._close_progress()
                await asyncio.sleep(RETRY_S)

    async def _follow_progress(self) -> None:
        if self._progress is None:
            self._progress = await kafka.assigned_consumer(self.settings, self.settings.topic_progress, from_end=True)
        polled = await self._progress.getmany(timeout_ms=PROGRESS_POLL_MS)
        for records in polled.values():
            for record in records:
                self.watermark.take(record.value or b"")
        await self._trim_stored()

    async def _close_progress(self) -> None:
        if self._progress is not None:
            consumer, self._progress = self._progress, None
            await consumer.stop()

    def _stored(self, flight: Flight) -> bool:
        return all(self.watermark.is_stored(p, low, high) for p, (low, high) in flight.spans.items())

    async def _trim_stored(self) -> None:
        """Let go of the oldest flights whose every callback is stored; publish again an oldest flight
        that stays unstored while later ones are stored (something downstream lost it)."""
        done = list(itertools.takewhile(self._stored, self._flights))
        if done:
            if not await self._trim(done[-1].end, sum(flight.records for flight in done)):
                return  # the same flights again at the next poll
            while self._flights and any(self._flights[0] is flight for flight in done):
                self._flights.popleft()
            self._hole_since = None
            lowest: dict[int, int] = {}
            for flight in self._flights:
                for partition, (low, _) in flight.spans.items():
                    lowest[partition] = min(low, lowest.get(partition, low))
            self.watermark.forget_below(lowest)
        await self._mend_hole()

    async def _mend_hole(self) -> None:
        """Flights are not stored while a later one is: after ``journal_republish_after_s``
        (stragglers of a rebalance or a restart land well within it), the oldest flights up to the last
        unstored one before the newest stored one are published again; their event ids absorb any repeat."""
        window = list(itertools.islice(self._flights, HOLE_LOOKAHEAD_FLIGHTS + 1))
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
        assert self.journal is not None
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
        for _ in hole:
            self._flights.popleft()
        self._flights.appendleft(Flight(end, records, offsets_by_partition(acks)))
        self._hole_since = None
        metrics.EDGE_REPUBLISHED.inc(records)
        log.warning(
            "callbacks stayed unstored while later ones were stored: published again",
            records=records,
            offsets=[{p: list(span) for p, span in f.spans.items()} for f in hole],
            grace_s=self.settings.journal_republish_after_s,
        )

    async def _trim_owed(self) -> None:
        assert self._owed_trim is not None
        if await self._trim(*self._owed_trim):
            self._owed_trim = None

    async def _trim(self, end: Position, records: int) -> bool:
        """Let go of the journal up to ``end``; False (logged once per episode) when the disk failed,
        and then nothing is let go of: the caller tries again."""
        assert self.journal is not None
        loop = asyncio.get_running_loop()
        try:
            if self.accepted is not None:  # never let go of a frame the saved counts do not cover
                await loop.run_in_executor(self._disk, self.accepted.count_and_save, time.time())
            await loop.run_in_executor(self._disk, self.journal.trim, end, records)
        except OSError as exc:
            if not self._trim_failing:
                log.error("journal cannot move its trim position: trying again", error=repr(exc))
            self._trim_failing = True
            return False
        if self._trim_failing:
            log.info("journal trims again")
            self._trim_failing = False
        self._refused_since_trim = False
        metrics.EDGE_JOURNAL_TRIMMED.inc(records)
        self._update_gauges()
        if self.journal.is_empty:
            gc.collect()  # roles collect rarely (tune_gc): cycles that still hold bodies go now...
            await loop.run_in_executor(self._disk, release_free_memory)  # ...and the memory back to the system
        return True

    # --- counts ---
    async def _ledger_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ledger_interval_s)
            await self.flush_ledger()

    async def flush_ledger(self) -> None:
        await self._say_accepted()
        message = self.ledger.take()
        if message is None:
            return
        try:
            await asyncio.wait_for(
                self.publisher.publish_to(self.settings.topic_ledger, message), self.settings.publish_timeout_s
            )
        except (TimeoutError, KafkaError):
            self.ledger.restore(message)  # counted again in the next delta

    async def _say_accepted(self) -> None:
        if self.accepted is None:
            return
        loop = asyncio.get_running_loop()
        message, keys = await loop.run_in_executor(self._disk, self.accepted.checkpoint, time.time())
        if message is None:
            return
        try:
            await asyncio.wait_for(
                self.publisher.publish_to(self.settings.topic_ledger, message), self.settings.publish_timeout_s
            )
        except (TimeoutError, KafkaError):
            await loop.run_in_executor(self._disk, self.accepted.give_back, keys)  # said with the next totals

    def _quarantine(self, raws: list[RawCallback]) -> None:
        """Callbacks the broker will never take (too large) leave the journal for a folder of their own,
        so they cannot hold up the ones behind them; they stay on disk for an operator."""
        assert self.journal is not None
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

    async def _gauge_loop(self) -> None:
        while True:
            await asyncio.sleep(GAUGE_INTERVAL_S)
            self._update_gauges()
            try:
                self.oldest_age_s = await asyncio.get_running_loop().run_in_executor(self._disk, self._oldest_age_s)
            except OSError:
                continue  # the publisher logs what the journal's disk does
            metrics.EDGE_JOURNAL_OLDEST_AGE.set(self.oldest_age_s)

    def _oldest_age_s(self) -> float:
        """Seconds since the oldest callback the journal still holds was received (0 when empty)."""
        first = self.journal.first_untrimmed() if self.journal is not None else None
        if first is None:
            return 0.0
        return max(0.0, time.time() - RawCallback.from_bytes(first).received_at_us / 1_000_000)

    def _update_gauges(self) -> None:
        if self.journal is not None:
            metrics.EDGE_JOURNAL_BYTES.set(self.journal.untrimmed_bytes)
            metrics.EDGE_JOURNAL_RECORDS.set(self.journal.untrimmed_records)
            metrics.EDGE_UNPUBLISHED.set(self.unpublished_records)
