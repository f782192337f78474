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

``Intake`` is the face the edge's app uses; the work is done in rooms of their own, each stating its
contract: :mod:`~ringback.edge.group_commit` (appends, one write and one fsync per group, counted as
accepted there), :mod:`~ringback.edge.journal_publisher` (the journal to the raw topic, in order),
:mod:`~ringback.edge.flights` (what is published and not yet let go of), :mod:`~ringback.edge.mending`
(the progress topic: letting go of what is stored, publishing again what was lost),
:mod:`~ringback.edge.trim` (the one way the journal lets go) and :mod:`~ringback.edge.accepted_ledger`
(the counts, said on the ledger topic). All of them touch the journal on one thread of its own, so the
event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ringback import logs, metrics
from ringback.config import Settings
from ringback.edge.accepted import AcceptedCounts
from ringback.edge.accepted_ledger import AcceptedLedger
from ringback.edge.flights import Flights
from ringback.edge.group_commit import GroupCommit, NotDurable
from ringback.edge.journal import Journal
from ringback.edge.journal_publisher import JournalPublisher
from ringback.edge.mending import Mending
from ringback.edge.publisher import Publisher
from ringback.edge.trim import Trim
from ringback.runtime.kafka import BrokerError, MessageTooLarge
from ringback.runtime.ledger import EDGE_ACCEPTED, Ledger
from ringback.runtime.raw import RawCallback

__all__ = ["BROKER", "JOURNAL", "SPOOL", "Intake", "NotDurable", "TooLargeForBroker", "claim_spool_dir"]

GAUGE_INTERVAL_S = 1.0
SPOOL_SLOTS = 64

JOURNAL = "journal"
BROKER = "broker"
SPOOL = "spool"

log = logs.get(__name__)


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


class Intake:
    """The edge's way in: ``accept(raw)`` answers only once the callback is durable.

    Promises: ``accept`` returns where the callback is durable (``journal``, ``broker`` or ``spool``)
    or raises ``NotDurable`` (retryable) or ``TooLargeForBroker`` (never); ``accepting`` says whether
    the journal takes callbacks now (readiness). Expects: ``start()`` before the first request,
    ``stop()`` once after the last; ``broker_restarted()`` when the broker lost what it held.
    """

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
        self._tasks: list[asyncio.Task[None]] = []
        self.oldest_age_s = 0.0  # journal mode: refreshed every GAUGE_INTERVAL_S
        self.ledger = Ledger()
        #: Journal mode: what was acknowledged is counted with the journal's frames (durable), not in memory.
        self.accepted = AcceptedCounts.open(self.journal) if self.journal_mode and self.journal is not None else None
        self.counts = AcceptedLedger(settings, publisher, self.ledger, self.accepted, self._disk)
        self.flights = Flights()
        self.commit: GroupCommit | None = None
        self.journal_publisher: JournalPublisher | None = None
        self.mending: Mending | None = None
        if self.journal is not None:
            self.commit = GroupCommit(self.journal, self._disk, self.accepted, self._update_gauges)
            trim = Trim(self.journal, self._disk, self.commit, self.accepted, self._update_gauges)
            self.journal_publisher = JournalPublisher(
                self.journal,
                self._disk,
                publisher,
                self.flights,
                trim,
                journal_mode=self.journal_mode,
                appended=self.commit.appended,
                forget_broker=self._forget_broker,
                published=self._update_gauges,
            )
            if self.journal_mode:
                self.mending = Mending(settings, self.journal, self._disk, publisher, self.flights, trim)
        self._update_gauges()

    # --- lifecycle ---
    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.counts.run()))
        if self.journal is None or self.commit is None or self.journal_publisher is None:
            return
        self.journal_publisher.start()
        self._tasks += [asyncio.create_task(self.commit.run()), asyncio.create_task(self.journal_publisher.run())]
        if self.mending is not None:
            self._tasks += [asyncio.create_task(self.mending.run()), asyncio.create_task(self._gauge_loop())]
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
        if self.mending is not None:
            await self.mending.stop()
        if self.journal is not None:
            self.journal.close()
        if self._dir_lock is not None:
            os.close(self._dir_lock)
        self._disk.shutdown(wait=True)

    def broker_restarted(self) -> None:
        """The broker lost what it held (the embedded one restarted): publish everything not let go of
        again and forget every offset learned from the old broker."""
        if self.journal_publisher is not None:
            self.journal_publisher.broker_restarted()

    async def _forget_broker(self) -> None:
        if self.mending is not None:
            self.mending.forget()
        await self.counts.say_all_again()
        if self.mending is not None:
            await self.mending.rewind()

    async def flush_ledger(self) -> None:
        await self.counts.flush()

    @property
    def accepting(self) -> bool:
        """Whether a callback can be made durable now (for readiness)."""
        return self.refusal is None

    @property
    def refusal(self) -> str | None:
        """Why no callback can be journaled now (None when one can), for readiness."""
        if self.commit is None:
            return "the edge has no journal (spool_max_bytes = 0)"
        return self.commit.refusal

    @property
    def unpublished_records(self) -> int:
        return self.journal_publisher.unpublished_records if self.journal_publisher is not None else 0

    # --- accepting ---
    async def accept(self, raw: RawCallback) -> str:
        """Make ``raw`` durable; returns where ("journal", "broker" or "spool"), raises NotDurable."""
        where = await self._make_durable(raw)
        if self.accepted is None:
            self.ledger.count(EDGE_ACCEPTED, raw.route, raw.received_at_us, tenant=raw.tenant)
        return where

    async def _make_durable(self, raw: RawCallback) -> str:
        commit = self.commit
        if self.journal_mode:
            if commit is None:
                raise NotDurable("the edge has no journal (spool_max_bytes = 0)")
            await commit.append(raw)
            return JOURNAL
        if commit is not None and (not commit.journal.is_empty or not self.publisher.ready):
            await commit.append(raw)
            metrics.EDGE_SPOOLED.inc()
            return SPOOL
        try:
            async with asyncio.timeout(self.settings.publish_timeout_s):  # unlike wait_for, no task per request
                await self.publisher.publish(raw)
            return BROKER
        except MessageTooLarge as exc:
            raise TooLargeForBroker(str(exc)) from exc
        except (TimeoutError, BrokerError) as exc:
            if commit is None:
                raise NotDurable(f"broker did not acknowledge: {exc!r}") from exc
            await commit.append(raw)
            metrics.EDGE_SPOOLED.inc()
            return SPOOL

    # --- gauges ---
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
