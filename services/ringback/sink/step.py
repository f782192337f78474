"""The sink's step: normalized events, dead letters and ledger deltas in, batches stored, offsets freed.

Messages fill a batch until ``sink_batch_rows`` or ``sink_batch_seconds``; the batch is then stored
while the next one fills (one batch in flight at most, stored and reported finished in order). Only
a stored batch's offsets become committable. A full batch waiting behind one still being stored
pushes back: the driver fetches nothing more meanwhile, however long a ClickHouse outage lasts.
After each commit, when edges journal, a stored mark goes to the progress topic.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping

from ringback import logs, metrics
from ringback.config import Settings
from ringback.runtime import progress
from ringback.runtime.avro import AvroDecodeError, EventCodec
from ringback.runtime.dead_letter import DeadLetter
from ringback.runtime.kafka import BrokerError
from ringback.runtime.ledger import SINK_DEAD_LETTERS, SINK_EVENTS, Ledger, LedgerRow, ledger_rows
from ringback.runtime.stream.backend import Message, Partition, Producer
from ringback.sink.batch import InsertBatch
from ringback.sink.conflicts import ConflictWatcher
from ringback.sink.rows import undecodable
from ringback.sink.store import DEAD_LETTERS_TABLE, EVENTS_TABLE, LEDGER_TABLE, EventKey, Store

HOUR_US = 3_600_000_000
#: The stored marks are said again this often, so an edge never waits on one that got lost.
STORED_MARK_REFRESH_S = 5.0
MAX_POLL_WAIT_MS = 200

log = logs.get(__name__)


class SinkStep:
    """The sink's Strategy (see ringback.runtime.stream.driver)."""

    def __init__(self, settings: Settings, store: Store, codec: EventCodec, producer: Producer | None) -> None:
        self.settings = settings
        self.store = store
        self.codec = codec
        self.producer = producer  # stored marks, when edges journal
        self.batch = InsertBatch()
        #: The previous batch being stored while the next one fills.
        self.in_flight: asyncio.Task[None] | None = None
        self.ledger = Ledger()
        self.conflicts = ConflictWatcher(settings.conflict_check_interval_s)
        self._done: dict[Partition, int] = {}
        self._marks: dict[str, int] = {}  # every partition's stored offset said so far (edges journal)
        self._marked_at = 0.0

    # --- Strategy ---
    async def submit(self, messages: list[Message]) -> None:
        for message in messages:
            self._take(message)
        metrics.SINK_PENDING_ROWS.set(self.batch.row_count)

    async def poll(self) -> None:
        await self._collect()
        if self._due() and self.in_flight is None:
            self.flush_nowait()
        if self.in_flight is None and self.conflicts.due():  # owed since a quiet spell began
            self.in_flight = asyncio.create_task(self._look_for_conflicts())
        if self._marks and time.monotonic() - self._marked_at >= STORED_MARK_REFRESH_S:
            await self._send_marks()

    def committable(self) -> Mapping[Partition, int]:
        return self._done

    async def committed(self, offsets: Mapping[Partition, int]) -> None:
        """Tell the edges (progress topic) how far these partitions are stored. All marks so far are
        said again every STORED_MARK_REFRESH_S, so one that does not get out is made up for."""
        if self.producer is None:
            return
        self._marks.update({progress.key(p.topic, p.index): offset for p, offset in offsets.items()})
        await self._send_marks()

    async def _send_marks(self) -> None:
        assert self.producer is not None
        self._marked_at = time.monotonic()
        try:
            await self.producer.send(self.settings.topic_progress, progress.stored_message(self._marks))
        except BrokerError as exc:
            log.warning("stored mark not published", error=repr(exc))

    def ready_for_more(self) -> bool:
        return self.batch.row_count < self.settings.sink_batch_rows

    def poll_limits(self) -> tuple[int, int]:
        """(wait, records) for the next fetch: no longer than the open batch may wait, no more than it holds."""
        wait_ms = MAX_POLL_WAIT_MS
        if not self.batch.empty and self.in_flight is None:  # (with one in flight, a due batch waits anyway)
            remaining = self.settings.sink_batch_seconds - self.batch.age_s()
            wait_ms = max(0, min(wait_ms, int(remaining * 1000)))
        return wait_ms, max(1, self.settings.sink_batch_rows - self.batch.row_count)

    async def join(self) -> None:
        await self.flush()

    def not_ready_reasons(self) -> list[str]:
        return []

    # --- batching ---
    def _take(self, message: Message) -> None:
        self.batch.track(message)
        if message.topic == self.settings.topic_ledger:
            try:
                self.batch.ledger.extend(ledger_rows(message.value))
            except (ValueError, KeyError, TypeError) as exc:
                log.error(
                    "unreadable ledger message skipped",
                    partition=message.partition.index,
                    offset=message.offset,
                    error=str(exc),
                )
            return
        if message.topic == self.settings.topic_dlq:
            self.batch.dead_letters.append(DeadLetter.from_message(message.value, message.headers))
            return
        try:
            self.codec.writer_of(message.value)
        except AvroDecodeError as exc:
            self.batch.dead_letters.append(undecodable(message, exc))
            return
        self.batch.events.append(message)

    def _due(self) -> bool:
        if self.batch.empty:
            return False
        return (
            self.batch.row_count >= self.settings.sink_batch_rows
            or self.batch.age_s() >= self.settings.sink_batch_seconds
        )

    def flush_nowait(self) -> None:
        """Hand the open batch to the store (the one before must be finished)."""
        assert self.in_flight is None, "one batch in flight at most"
        if self.batch.empty:
            return
        batch, self.batch = self.batch, InsertBatch()
        metrics.SINK_PENDING_ROWS.set(0)
        self.in_flight = asyncio.create_task(self._store(batch))

    async def flush(self) -> None:
        """Store everything taken so far and wait until it is stored."""
        await self.settle()
        self.flush_nowait()
        await self.settle()

    async def settle(self) -> None:
        """Wait for the batch in flight, if any (its failure is raised here)."""
        if self.in_flight is not None:
            await asyncio.shield(self.in_flight)
            await self._collect()

    async def _collect(self) -> None:
        task = self.in_flight
        if task is None or not task.done():
            return
        self.in_flight = None
        task.result()  # a bug in storing must surface, not pass silently

    async def _store(self, batch: InsertBatch) -> None:
        stored_keys: list[EventKey] = []
        if batch.event_count:
            stored = await self.store.store_events(batch.events, batch.dedup_token(EVENTS_TABLE))
            stored_keys = stored.event_keys
            batch.dead_letters.extend(stored.set_aside)
        if batch.dead_letters:
            await self.store.store_dead_letters(batch.dead_letters, batch.dedup_token(DEAD_LETTERS_TABLE))
        batch.ledger.extend(self._own_ledger_rows(stored_keys, batch.dead_letters))
        if batch.ledger:
            await self.store.store_ledger(batch.ledger, batch.dedup_token(LEDGER_TABLE))
        self._done.update(batch.next_offsets)
        log.debug("batch stored", events=batch.event_count, dead_letters=len(batch.dead_letters))
        if batch.event_count:
            self.conflicts.stored()
        if self.conflicts.due():
            await self._look_for_conflicts()

    async def _look_for_conflicts(self) -> None:
        try:
            await self.store.on_db_thread(self.conflicts.look, self.store.client)
        except Exception as exc:  # a look that fails is tried again after the next batch; it never holds up storing
            log.warning("looking for billing conflicts failed", error=f"{type(exc).__name__}: {exc}"[:500])

    def _own_ledger_rows(self, event_keys: list[EventKey], dead_letters: list[DeadLetter]) -> list[LedgerRow]:
        """The sink's own counts for this batch: events taken (stored, or set aside as unstorable, which
        also counts as a dead letter) and dead-letter rows, per tenant, route and hour of receipt."""
        hours = Counter(
            (key.route, key.received_at_us - key.received_at_us % HOUR_US, key.tenant) for key in event_keys
        )
        for (route, hour_us, tenant), n in hours.items():
            self.ledger.count(SINK_EVENTS, route, hour_us, n, tenant=tenant)
        for letter in dead_letters:
            self.ledger.count(SINK_DEAD_LETTERS, letter.raw.route, letter.raw.received_at_us, tenant=letter.raw.tenant)
        delta = self.ledger.take()
        return ledger_rows(delta) if delta else []
