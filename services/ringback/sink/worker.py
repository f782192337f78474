"""`ringback sink`: normalized events and dead letters in, ClickHouse batch inserts out.

Rows are buffered until ``sink_batch_rows`` or ``sink_batch_seconds``, inserted (events and dead
letters), and only then are the consumer offsets committed. A failed insert is retried with backoff
and the offsets never move past it; every insert carries a deduplication token derived from the
offsets it covers, so an insert retried after an unclear failure is not stored twice.

Events take the fast path: their Avro bodies go to ClickHouse as they arrived, in a container file
(``FORMAT Avro``), so Python never decodes them. If ClickHouse refuses that insert for any reason,
the batch takes the checked path: each event decoded in Python, a columnar insert retried with
backoff, and any event that cannot be decoded or stored set aside in dead_letters with why.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DataError

from ringback import logs, metrics
from ringback.config import Settings
from ringback.runtime import clickhouse, kafka, progress
from ringback.runtime.avro import HEADER_LENGTH, AvroDecodeError, EventCodec
from ringback.runtime.avro_container import container
from ringback.runtime.dead_letter import WHOLE_REQUEST, DeadLetter, Failure
from ringback.runtime.drain import drain
from ringback.runtime.ledger import LEDGER_COLUMNS, SINK_DEAD_LETTERS, SINK_EVENTS, Ledger, ledger_rows
from ringback.runtime.raw import RawCallback

EVENTS_TABLE = "ringback.events"
DEAD_LETTERS_TABLE = "ringback.dead_letters"
LEDGER_TABLE = "ringback.ledger"
#: Duplicates inside one batch are left to merges and FINAL (events_dedup), like duplicates across
#: batches already are: collapsing them at insert costs ~25 % of the engine's insert time.
EVENTS_INSERT_SETTINGS = {"optimize_on_insert": 0}
DEAD_LETTER_COLUMNS = [
    "route", "ingest_id", "report_index", "received_at", "remote_addr", "content_type", "failure_type",
    "reason", "normalizer_version", "source_topic", "source_partition", "source_offset", "dead_lettered_at", "body",
    "report_count", "failed_reports", "failure_counts", "failures.report_index", "failures.failure_type", "failures.reason", "body_sha256",
]
UNDECODABLE_EVENT = "undecodable_event"
UNSTORABLE_EVENT = "unstorable_event"
#: Raised while serializing a batch for ClickHouse when a *value* cannot be stored (not an outage):
#: retrying cannot help, so the batch is split to set the offending rows aside.
DATA_ERRORS = (DataError, ValueError, TypeError, OverflowError, struct.error)
CLICKHOUSE_MAX_YEAR = 2299
#: What a normalized-topic message that fastavro cannot read raises.
DECODE_ERRORS = (AvroDecodeError, ValueError, EOFError, IndexError, KeyError, TypeError)
INSERT_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
MAX_POLL_WAIT_MS = 200
HOUR_US = 3_600_000_000

log = logs.get(__name__)


@dataclass
class Batch:
    """Rows waiting to be inserted, and the offsets that become committable once they are."""

    #: Normalized-topic records whose header names a known schema; their bodies are not decoded yet.
    events: list[ConsumerRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    ledger: list[list[Any]] = field(default_factory=list)
    first_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    opened_at: float = 0.0

    @property
    def event_count(self) -> int:
        return len(self.events)

    @property
    def row_count(self) -> int:
        return self.event_count + len(self.dead_letters) + len(self.ledger)

    def track(self, record: ConsumerRecord) -> None:
        tp = TopicPartition(record.topic, record.partition)
        if not self.first_offsets and not self.next_offsets:
            self.opened_at = time.monotonic()
        self.first_offsets.setdefault(tp, record.offset)
        self.next_offsets[tp] = record.offset + 1

    def dedup_token(self, table: str) -> str:
        """Same offsets -> same token, so a retried insert of this batch is dropped by ClickHouse."""
        span = ",".join(f"{tp.topic}:{tp.partition}:{self.first_offsets[tp]}-{end}" for tp, end in sorted(self.next_offsets.items()))
        return hashlib.sha256(f"{table}|{span}".encode()).hexdigest()


def _as_int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return WHOLE_REQUEST


def dead_letter_row(letter: DeadLetter) -> list[Any]:
    """One ``ringback.dead_letters`` row (DEAD_LETTER_COLUMNS) per dead letter, that is per request."""
    raw = letter.raw
    return [
        raw.route, raw.ingest_id, letter.report_index, raw.received_at, raw.remote_addr, raw.content_type,
        letter.failure_type, letter.failure_message, letter.normalizer_version, raw.topic, raw.partition,
        raw.offset, datetime.fromtimestamp((letter.dead_lettered_at_us or time.time_ns() // 1000) / 1_000_000, tz=timezone.utc), raw.body,
        letter.report_count, letter.failed_reports, letter.failure_counts,
        [f.report_index for f in letter.failures], [f.failure_type for f in letter.failures], [f.message for f in letter.failures],
        letter.body_sha256,
    ]


class Sink:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.codec = EventCodec.from_dir(settings.schemas_dir)
        # chdb is an in-process engine: every ClickHouse call of ingestion goes through this one thread.
        self.db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self.client: Client | None = None
        # A client of its own for analysts' queries, read-only and bounded for its whole session, on a
        # thread of its own: a long analyst query never waits in front of an insert.
        self.reader: Client | None = None
        self.query_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-query")
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None  # progress marks, when edges journal
        self.batch = self._new_batch()
        #: The previous batch being stored while the next one fills; stored and committed in order.
        self.in_flight: asyncio.Task[None] | None = None
        self.ledger = Ledger()
        self.healthy = False

    def _new_batch(self) -> Batch:
        return Batch()

    async def on_db_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.db_thread, fn, *args)

    async def start(self) -> None:
        dsn = self.settings.effective_clickhouse_dsn
        self.client = await self.on_db_thread(clickhouse.connect, dsn)
        applied = await self.on_db_thread(clickhouse.apply_ddl, self.client, self.settings.schemas_dir, self.settings.clickhouse_cluster)
        self.reader = await self.on_query_thread(clickhouse.connect_reader, dsn, clickhouse.QueryLimits.of(self.settings))
        log.info("clickhouse ready", dsn=clickhouse.redacted(dsn), ddl_statements=applied)
        await kafka.ensure_topics_if_allowed(self.settings)
        topics = [self.settings.topic_normalized, self.settings.topic_dlq, self.settings.topic_ledger]
        self.consumer = kafka.consumer(self.settings, topics, self.settings.sink_group)
        await self.consumer.start()
        if self.settings.journal_enabled:
            self.producer = kafka.producer(self.settings)
            await self.producer.start()
        self.healthy = True
        log.info("sink consuming", topics=topics, group=self.settings.sink_group)

    async def stop(self) -> None:
        self.healthy = False
        if self.in_flight is not None and not self.in_flight.done():
            self.in_flight.cancel()  # not committed, so read again by whoever takes these partitions
            await asyncio.gather(self.in_flight, return_exceptions=True)
        if self.producer is not None:
            await self.producer.stop()
        if self.consumer is not None:
            await self.consumer.stop()
        if self.reader is not None:
            await self.on_query_thread(self.reader.close)  # after the query running, if any (bounded by its time limit)
        self.query_thread.shutdown(wait=True)
        if self.client is not None:
            await self.on_db_thread(self.client.close)
        self.db_thread.shutdown(wait=True)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.step()
        await self.drain()

    async def step(self) -> int:
        """Read once; when the batch is due, hand it to the store and go on reading into the next one."""
        count = await self.poll_once()
        if self._batch_due():
            await self.flush(wait=False)
        return count

    async def drain(self) -> None:
        """On shutdown: read what is left (bounded by drain_timeout_s), then flush and commit."""

        async def poll_and_flush_full() -> int:
            count = await self.poll_once()
            if self.batch.row_count >= self.settings.sink_batch_rows:
                await self.flush()
            return count

        await drain(poll_and_flush_full, self.settings.drain_timeout_s)
        await self.flush()

    def _batch_due(self) -> bool:
        batch = self.batch
        if not batch.next_offsets:
            return False
        return batch.row_count >= self.settings.sink_batch_rows or time.monotonic() - batch.opened_at >= self.settings.sink_batch_seconds

    async def poll_once(self) -> int:
        assert self.consumer is not None
        wait_ms = MAX_POLL_WAIT_MS
        if self.batch.next_offsets:
            remaining = self.settings.sink_batch_seconds - (time.monotonic() - self.batch.opened_at)
            wait_ms = max(0, min(wait_ms, int(remaining * 1000)))
        room = max(1, self.settings.sink_batch_rows - self.batch.row_count)
        polled = await self.consumer.getmany(timeout_ms=wait_ms, max_records=room)
        count = 0
        for records in polled.values():
            for record in records:
                self._take(record)
            count += len(records)
        metrics.SINK_PENDING_ROWS.set(self.batch.row_count)
        return count

    def _take(self, record: ConsumerRecord) -> None:
        self.batch.track(record)
        if record.topic == self.settings.topic_ledger:
            try:
                self.batch.ledger.extend(ledger_rows(record.value or b""))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("unreadable ledger message skipped", partition=record.partition, offset=record.offset, error=str(exc))
            return
        if record.topic == self.settings.topic_dlq:
            self.batch.dead_letters.append(DeadLetter.from_message(record.value, record.headers))
            return
        try:
            self.codec.writer_of(record.value or b"")
        except AvroDecodeError as exc:
            self.batch.dead_letters.append(self._undecodable(record, exc))
            return
        self.batch.events.append(record)

    def _undecodable(self, record: ConsumerRecord, exc: Exception) -> DeadLetter:
        """Never silently dropped: an event no one can read is stored beside the dead letters, with why."""
        metrics.SINK_UNDECODABLE.inc()
        log.error("undecodable normalized event", topic=record.topic, partition=record.partition, offset=record.offset, error=str(exc))
        raw = RawCallback.from_message(record.topic, record.partition, record.offset, record.value, record.headers)
        return DeadLetter.of(raw, [Failure(WHOLE_REQUEST, UNDECODABLE_EVENT, str(exc))], 0, "")

    async def flush(self, wait: bool = True) -> None:
        """Store the current batch and then commit its offsets. With ``wait=False`` this returns once
        the previous batch is stored, so reading overlaps the insert; one batch is in flight at most."""
        await self.settle()
        batch = self.batch
        if not batch.next_offsets:
            return
        self.batch = self._new_batch()
        metrics.SINK_PENDING_ROWS.set(0)
        self.in_flight = asyncio.create_task(self._store_and_commit(batch))
        if wait:
            await self.settle()

    async def settle(self) -> None:
        """Wait until the batch in flight, if any, is stored and committed (its failure is raised here)."""
        task, self.in_flight = self.in_flight, None
        if task is not None:
            await task

    async def _store_and_commit(self, batch: Batch) -> None:
        assert self.consumer is not None and self.client is not None
        stored_keys: list[tuple[str, int]] = []
        if batch.event_count:
            stored_keys, set_aside = await self._store_events(batch.events, batch.dedup_token(EVENTS_TABLE))
            batch.dead_letters.extend(set_aside)
        if batch.dead_letters:
            columns = [list(col) for col in zip(*(dead_letter_row(letter) for letter in batch.dead_letters))]
            await self._insert_with_retry(DEAD_LETTERS_TABLE, columns, DEAD_LETTER_COLUMNS, batch.dedup_token(DEAD_LETTERS_TABLE))
        batch.ledger.extend(self._own_ledger_rows(stored_keys, batch.dead_letters))
        if batch.ledger:
            columns = [list(col) for col in zip(*batch.ledger)]
            await self._insert_with_retry(LEDGER_TABLE, columns, LEDGER_COLUMNS, batch.dedup_token(LEDGER_TABLE))
        try:
            await self.consumer.commit(dict(batch.next_offsets))
        except KafkaError as exc:
            # The rows are stored; whoever reads these offsets again inserts rows that collapse by event_id.
            log.warning("commit after insert failed", error=repr(exc))
        else:
            await self._say_stored(batch)
        log.debug("batch stored", events=batch.event_count, dead_letters=len(batch.dead_letters))

    async def _say_stored(self, batch: Batch) -> None:
        """Tell the edges (progress topic) how far this batch's partitions are stored; a mark that does
        not get out is made up for by the next one, which says at least as much."""
        if self.producer is None:
            return
        stored = {progress.key(tp.topic, tp.partition): offset for tp, offset in batch.next_offsets.items()}
        try:
            await self.producer.send(self.settings.topic_progress, progress.stored_message(stored))
        except KafkaError as exc:
            log.warning("stored mark not published", error=repr(exc))

    def _own_ledger_rows(self, event_keys: list[tuple[str, int]], dead_letters: list[DeadLetter]) -> list[list[Any]]:
        """The sink's own counts for this batch: events taken (stored, or set aside as unstorable, which
        also counts as a dead letter) and dead-letter rows, per route and hour of receipt."""
        for (route, hour_us), n in Counter((route, at - at % HOUR_US) for route, at in event_keys).items():
            self.ledger.count(SINK_EVENTS, route, hour_us, n)
        for letter in dead_letters:
            self.ledger.count(SINK_DEAD_LETTERS, letter.raw.route, letter.raw.received_at_us)
        delta = self.ledger.take()
        return ledger_rows(delta) if delta else []

    async def _store_events(self, records: list[ConsumerRecord], token: str) -> tuple[list[tuple[str, int]], list[DeadLetter]]:
        """Store the events: (route, receive time) of every event taken, and dead-letter rows for those
        that had to be set aside."""
        try:
            keys = [self.codec.route_and_received_at(record.value) for record in records]
            await self._insert_containers(records, token)
            return keys, []
        except Exception as exc:  # any refusal: the checked path finds out whether it is the data or the store
            metrics.SINK_CHECKED_BATCHES.inc()
            log.warning("container insert refused, storing the batch through the checked path", events=len(records), error=str(exc)[:500])
        return await self._store_checked(records, token)

    async def _insert_containers(self, records: list[ConsumerRecord], token: str) -> None:
        """The fast path: one container file per writer schema, bodies untouched."""
        by_writer: dict[bytes, list[bytes]] = {}
        for record in records:
            by_writer.setdefault(self.codec.writer_of(record.value), []).append(record.value)
        for fingerprint, payloads in by_writer.items():
            names = [f["name"] for f in self.codec.known_writers[fingerprint]["fields"]]
            schema_json = self.codec.writer_json[fingerprint]
            part_token = token if len(by_writer) == 1 else f"{token}:{fingerprint.hex()}"
            started = time.perf_counter()
            await self.on_db_thread(self._insert_container, schema_json, names, payloads, part_token)
            metrics.SINK_INSERT_SECONDS.labels(EVENTS_TABLE).observe(time.perf_counter() - started)
            metrics.SINK_ROWS.labels(EVENTS_TABLE).inc(len(payloads))

    def _insert_container(self, schema_json: str, names: list[str], payloads: list[bytes], token: str) -> None:
        assert self.client is not None
        data = container(schema_json, (payload[HEADER_LENGTH:] for payload in payloads))
        self.client.raw_insert(EVENTS_TABLE, names, insert_block=data, fmt="Avro", settings={**EVENTS_INSERT_SETTINGS, "insert_deduplication_token": token})

    async def _store_checked(self, records: list[ConsumerRecord], token: str) -> tuple[list[tuple[str, int]], list[DeadLetter]]:
        """The checked path: decode each event, insert columns (retried while the store is down), and
        set aside what cannot be read or stored."""
        events: list[dict[str, Any]] = []
        sources: list[ConsumerRecord] = []
        set_aside: list[DeadLetter] = []
        for record in records:
            try:
                events.append(self.codec.decode(record.value))
                sources.append(record)
            except DECODE_ERRORS as exc:
                set_aside.append(self._undecodable(record, exc))
        names = self.codec.field_names
        columns = [[event.get(name) for event in events] for name in names]
        if events:
            for index, reason in await self._store_columns(columns, token):
                set_aside.append(self._unstorable(sources[index], events[index], reason))
        keys = [(str(event["route"]), int(event["received_at"].timestamp() * 1_000_000)) for event in events]
        return keys, set_aside

    async def _store_columns(self, columns: list[list[Any]], token: str) -> list[tuple[int, str]]:
        """Insert; rows whose values ClickHouse cannot take are found by halving and returned, with why."""
        try:
            await self._insert_with_retry(EVENTS_TABLE, columns, self.codec.field_names, token)
            return []
        except DATA_ERRORS as exc:
            size = len(columns[0])
            if size == 1:
                return [(0, f"{type(exc).__name__}: {exc}")]
            half = size // 2
            left = await self._store_columns([column[:half] for column in columns], token + ":a")
            right = await self._store_columns([column[half:] for column in columns], token + ":b")
            return left + [(index + half, reason) for index, reason in right]

    def _unstorable(self, record: ConsumerRecord, event: dict[str, Any], reason: str) -> DeadLetter:
        """A dead-letter row for an event ClickHouse refused: kept, with the event as JSON, never dropped."""
        metrics.SINK_UNSTORABLE.inc()
        log.error("event ClickHouse cannot store, kept in dead_letters", event_id=event.get("event_id"), reason=reason[:300])
        received = event.get("received_at")
        if not isinstance(received, datetime) or received.year > CLICKHOUSE_MAX_YEAR:
            received = datetime.fromtimestamp(0, tz=timezone.utc)
        raw = RawCallback(
            route=str(event.get("route") or ""), ingest_id=str(event.get("ingest_id") or ""), received_at_us=int(received.timestamp() * 1_000_000),
            remote_addr="", content_type="", body=orjson.dumps(event, default=str), topic=record.topic, partition=record.partition, offset=record.offset,
        )
        failure = Failure(_as_int(event.get("report_index")), UNSTORABLE_EVENT, reason)
        return DeadLetter.of(raw, [failure], 1, str(event.get("normalizer_version") or ""))

    async def _insert_with_retry(self, table: str, columns: list[list[Any]], names: list[str], token: str) -> None:
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                await self.on_db_thread(self._insert, table, columns, names, token)
            except DATA_ERRORS:
                raise  # a value problem, not an outage: the caller isolates the row
            except Exception as exc:  # any ClickHouse failure: retry; offsets stay where they are
                metrics.SINK_INSERT_FAILURES.labels(table).inc()
                delay = INSERT_BACKOFF_S[min(attempt, len(INSERT_BACKOFF_S) - 1)]
                log.warning("insert failed, retrying", table=table, attempt=attempt + 1, retry_in_s=delay, error=str(exc)[:500])
                attempt += 1
                await asyncio.sleep(delay)
                continue
            metrics.SINK_INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)
            metrics.SINK_ROWS.labels(table).inc(len(columns[0]) if columns else 0)
            return

    def _insert(self, table: str, columns: list[list[Any]], names: list[str], token: str) -> None:
        assert self.client is not None
        extra = EVENTS_INSERT_SETTINGS if table == EVENTS_TABLE else {}
        self.client.insert(table, columns, column_names=names, column_oriented=True, settings={**extra, "insert_deduplication_token": token})

    async def on_query_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.query_thread, fn, *args)

    async def query(self, sql: str, default_format: str) -> bytes:
        """An analyst's query on the store this process owns (`ringback sql` while running): checked by
        the query guard, run on the reader's own thread, bounded by the query limits."""
        assert self.reader is not None
        return await self.on_query_thread(clickhouse.run_read_only, self.reader, sql, default_format)
