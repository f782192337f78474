"""Making a callback durable: publish it to the broker, or spool it locally when the broker cannot.

Order is kept: while the spool holds anything, new callbacks join it behind the older ones and the
drainer publishes them oldest first. Appends from concurrent requests are grouped into one write and
one fsync (group commit), on a thread of their own so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from ringback import logs, metrics
from ringback.config import Settings
from ringback.edge.publisher import Publisher
from ringback.edge.spool import Spool, SpoolFull
from ringback.runtime.ledger import EDGE_ACCEPTED, Ledger
from ringback.runtime.memory import release_free_memory
from ringback.runtime.raw import RawCallback

DRAIN_BATCH = 500
#: A drain batch stops at this many body bytes (large callbacks would otherwise make 500 of them huge).
DRAIN_BATCH_BYTES = 8 * 1024 * 1024
QUARANTINE_DIR = "quarantine"
DRAIN_IDLE_S = 0.2
DRAIN_RETRY_S = 1.0
GROUP_COMMIT_MAX = 1000

log = logs.get(__name__)


class NotDurable(RuntimeError):
    """Neither the broker nor the spool could take the callback: the vendor must retry."""


class TooLargeForBroker(RuntimeError):
    """The broker refuses a message this size, now and on every retry."""


SPOOL_SLOTS = 64


def claim_spool_dir(root: Path) -> tuple[Path, int]:
    """The first spool folder no other live edge process holds (``edge``, ``edge-1``, …).

    Edge processes sharing a port (SO_REUSEPORT) each need a spool of their own; an edge that starts
    after a crash takes over a folder whose owner is gone, and drains what it left behind.
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
    raise RuntimeError(f"all {SPOOL_SLOTS} spool folders under {root} are in use")


class Intake:
    def __init__(self, settings: Settings, publisher: Publisher, spool_dir: Path | None) -> None:
        self.settings = settings
        self.publisher = publisher
        self.spool: Spool | None = None
        self._spool_lock: int | None = None
        if settings.spool_max_bytes > 0:
            if spool_dir is None:
                spool_dir, self._spool_lock = claim_spool_dir(settings.data_path / "spool")
            self.spool = Spool(spool_dir, settings.spool_max_bytes)
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._queue: asyncio.Queue[tuple[bytes, asyncio.Future[None]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._refused_since_drain = False  # the spool turned a callback away and has not drained since
        self.ledger = Ledger()
        self._update_gauges()

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._ledger_loop()))
        if self.spool is not None:
            self._tasks += [asyncio.create_task(self._write_loop()), asyncio.create_task(self._drain_loop())]
            if self.spool.has_pending:
                log.warning("spool holds callbacks from before; draining them first", records=self.spool.pending_records, bytes=self.spool.pending_bytes)

    async def stop(self) -> None:
        await self.flush_ledger()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.spool is not None:
            self.spool.close()
        if self._spool_lock is not None:
            os.close(self._spool_lock)
        self._disk.shutdown(wait=True)

    @property
    def spool_usable(self) -> bool:
        return self.spool is not None and not self._refused_since_drain and self.spool.pending_bytes < self.spool.max_bytes

    async def accept(self, raw: RawCallback) -> str:
        """Make ``raw`` durable; returns "broker" or "spool", raises NotDurable."""
        where = await self._make_durable(raw)
        self.ledger.count(EDGE_ACCEPTED, raw.route, raw.received_at_us)
        return where

    async def _make_durable(self, raw: RawCallback) -> str:
        if self.spool is not None and (self.spool.has_pending or not self.publisher.ready):
            await self._spool(raw)
            return "spool"
        try:
            async with asyncio.timeout(self.settings.publish_timeout_s):  # unlike wait_for, no task per request
                await self.publisher.publish(raw)
            return "broker"
        except MessageSizeTooLargeError as exc:
            raise TooLargeForBroker(str(exc)) from exc
        except (asyncio.TimeoutError, KafkaError) as exc:
            if self.spool is None:
                raise NotDurable(f"broker did not acknowledge: {exc!r}") from exc
            await self._spool(raw)
            return "spool"

    async def _spool(self, raw: RawCallback) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((raw.to_bytes(), done))
        try:
            await done
        except SpoolFull as exc:
            raise NotDurable(f"spool cannot take it: {exc}") from None
        metrics.EDGE_SPOOLED.inc()

    # The loops below hand each batch to a method of its own, so that nothing of it (bodies, futures,
    # exceptions with their frames) stays referenced while the loop waits for the next one.
    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            await self._write_batch(first)

    async def _write_batch(self, first: tuple[bytes, asyncio.Future[None]]) -> None:
        assert self.spool is not None
        batch = [first]
        while not self._queue.empty() and len(batch) < GROUP_COMMIT_MAX:
            batch.append(self._queue.get_nowait())
        try:
            await asyncio.get_running_loop().run_in_executor(self._disk, self.spool.append, [payload for payload, _ in batch])
        except (SpoolFull, OSError) as exc:
            self._refused_since_drain = True
            reason = f"{type(exc).__name__}: {exc}"
            for _, done in batch:
                if not done.done():  # a fresh error each: no traceback, so no frame keeps the bodies alive
                    done.set_exception(SpoolFull(reason))
        else:
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
        self._update_gauges()

    async def _drain_loop(self) -> None:
        assert self.spool is not None
        while True:
            if not self.spool.has_pending or not self.publisher.ready:
                await asyncio.sleep(DRAIN_IDLE_S)
            elif not await self._drain_batch():
                await asyncio.sleep(DRAIN_RETRY_S)

    async def _drain_batch(self) -> bool:
        """Publish the oldest spooled callbacks; False when the broker did not take them all."""
        assert self.spool is not None
        loop = asyncio.get_running_loop()
        payloads, position = await loop.run_in_executor(self._disk, self.spool.read, DRAIN_BATCH, DRAIN_BATCH_BYTES)
        raws = [RawCallback.from_bytes(p) for p in payloads]
        del payloads
        results = await asyncio.gather(*(self.publisher.publish(raw) for raw in raws), return_exceptions=True)
        never = [raw for raw, result in zip(raws, results) if isinstance(result, MessageSizeTooLargeError)]
        failure = next((r for r in results if isinstance(r, BaseException) and not isinstance(r, MessageSizeTooLargeError)), None)
        if failure is not None:
            log.warning("spool drain paused: broker did not acknowledge", error=repr(failure))
            return False  # the whole batch again later; what did get through is absorbed by the event ids
        if never:
            await loop.run_in_executor(self._disk, self._quarantine, never)
        await loop.run_in_executor(self._disk, self.spool.acknowledge, position, len(raws))
        self._refused_since_drain = False
        metrics.EDGE_SPOOL_DRAINED.inc(len(raws))
        self._update_gauges()
        if not self.spool.has_pending:
            log.info("spool drained to the broker")
            gc.collect()  # roles collect rarely (tune_gc): cycles that still hold bodies go now...
            await loop.run_in_executor(self._disk, release_free_memory)  # ...and the memory back to the system
        return True

    async def _ledger_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ledger_interval_s)
            await self.flush_ledger()

    async def flush_ledger(self) -> None:
        message = self.ledger.take()
        if message is None:
            return
        try:
            await asyncio.wait_for(self.publisher.publish_to(self.settings.topic_ledger, message), self.settings.publish_timeout_s)
        except (asyncio.TimeoutError, KafkaError):
            self.ledger.restore(message)  # counted again in the next delta

    def _quarantine(self, raws: list[RawCallback]) -> None:
        """Callbacks the broker will never take (too large) leave the spool for a folder of their own,
        so they cannot hold up the ones behind them; they stay on disk for an operator."""
        assert self.spool is not None
        folder = self.spool.directory / QUARANTINE_DIR
        folder.mkdir(exist_ok=True)
        for raw in raws:
            path = folder / f"{raw.ingest_id}.raw"
            with open(path, "wb") as handle:
                handle.write(raw.to_bytes())
                handle.flush()
                os.fsync(handle.fileno())
            metrics.EDGE_QUARANTINED.inc()
            log.error("callback too large for the broker: quarantined", ingest_id=raw.ingest_id, route=raw.route, bytes=len(raw.body), path=str(path))

    def _update_gauges(self) -> None:
        if self.spool is not None:
            metrics.EDGE_SPOOL_BYTES.set(self.spool.pending_bytes)
            metrics.EDGE_SPOOL_RECORDS.set(self.spool.pending_records)
