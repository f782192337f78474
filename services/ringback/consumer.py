"""Reading ``ringback.normalized.v1`` from a billing job: decoded events, each one once, committed after use.

The topic, as the normalizer writes it:

- **value** — one normalized event in Avro single-object encoding: ``C3 01``, the writer schema's 8-byte
  CRC-64-AVRO fingerprint, the binary record (``schemas/normalized_event.avsc``).
- **key** — the ordering key ``<source>:<call_id | request_id | sid>`` (the first of the three the event
  has; its ``event_id`` when it has none). Every event of one call or one message, and every copy of
  one event, has the same key and therefore lands on the same partition, in the order published.
- **headers** — ``tenant`` (UTF-8), present only when the callback came in on a tenant URL; the event's
  ``tenant`` field says the same.
- **timestamp** — when the normalizer published it (not when the vendor called; that is ``received_at``).

What this module adds, with nothing of ringback's runtime but its Avro codec:

- **Decoding by fingerprint.** ``EventDecoder`` knows every writer schema in ``schemas/`` and
  ``schemas/history/`` and resolves each message to the job's reader schema (the current one unless
  given): a job on an older schema skips fields it does not know, a job on a newer one gets defaults
  for fields older messages lack. A message whose writer schema is not known stops the job
  (``UndecodableEvent``) rather than being skipped: add that schema's file, then run again.
- **The dedupe rule.** The same vendor report always has the same ``event_id``; it reaches the topic
  more than once when the vendor resends it or a replay after a crash publishes it again. The first
  copy seen wins; later copies are set aside as duplicates — or as *conflicts* when their billing
  values (charge, duration, billable minutes, status) differ from the first copy's. Ids are remembered
  for ``max_age`` of stream time (the newest ``received_at`` seen) and at most ``max_ids`` of them,
  whichever is shorter (``DedupeWindow``).
- **Commit after processing.** Each batch goes to the job's callback; its offsets are committed only
  after the callback returned. A callback that raises stops the consumer with nothing of that batch
  committed, so the batch comes again on the next run (at-least-once): the job's writes must be
  idempotent, or carry the offsets they cover (see ``examples/billing_job.py``).
- **Remembering across restarts.** When a partition is assigned, the consumer re-reads what precedes
  the committed offset within the window (by time and by count) to remember those ids, without
  handing them to the job: a resend arriving after a restart is still recognised.
- **A durable id store** (``state_dir``): the ids of first copies, kept in SQLite for the same window
  (``max_age`` of stream time, at most ``max_ids``), written after the job's callback returned and before
  the commit. Only this survives a broker that starts afresh — which is what the embedded broker does at
  every start of `ringback run` and every recycle: its topics begin again at offset 0, with no committed
  offsets and none of the old messages.
- **Broker incarnations.** The consumer asks the broker for its cluster id (the embedded broker gets a new
  one at every start) before it starts and after every fetch. When it changes, it never skips silently:
  it logs it, counts it (``Summary.incarnations``), commits nothing of the batch fetched meanwhile, and
  reads every partition of the new topic from its start, the id store setting aside what was billed
  before. ``Batch.incarnation`` tells the job which broker the offsets of a batch belong to: a job
  that keeps offsets of its own must keep them per incarnation (see ``examples/billing_job.py``).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import inspect
import io
import logging
import sqlite3
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import fastavro
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from ringback.runtime.avro import HEADER_LENGTH, EventCodec, load_schema, schema_fingerprint

DEFAULT_TOPIC = "ringback.normalized.v1"
DEFAULT_SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
TENANT_HEADER = "tenant"
#: Vendors resend within minutes to hours (Tencent retries twice; the CDR platform resends only on an
#: HTTP 500, at most three sends), and a replay after a crash publishes again what the edge's journal
#: still held: a day of stream time covers both with room to spare.
DEFAULT_MAX_AGE = timedelta(hours=24)
#: About 135 bytes of memory per remembered id: 1 M ids is ~135 MB, a full day at ~12 events/s.
DEFAULT_MAX_IDS = 1_000_000
DEFAULT_MAX_BATCH = 1000
#: Where a group without committed offsets starts: the oldest message the topic keeps, or what comes next.
START_POLICIES = ("earliest", "latest")
POLL_TIMEOUT_MS = 500
#: How long to wait before asking again when the broker does not tell its cluster id (restarting).
INCARNATION_RETRY_S = 0.5
#: The durable id store, one SQLite file per consumer group in ``state_dir``.
ID_STORE_SUFFIX = ".ids.sqlite"
#: Fields whose values a bill depends on: a resend that changes one of them is a conflict.
BILLING_FIELDS = ("charge", "duration_s", "billable_minutes", "status")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MS_PER_S = 1000
_US_PER_MS = 1000
_US_PER_S = 1_000_000

log = logging.getLogger(__name__)


class UndecodableEvent(ValueError):
    """A message on the topic is not an event of a known schema; nothing from it on was committed."""


class EventDecoder:
    """Avro single-object messages → event dicts, each resolved from its writer's schema (found by
    fingerprint among ``schemas_dir``'s ``normalized_event*.avsc`` files) to ``reader_schema``."""

    def __init__(self, schemas_dir: str | Path = DEFAULT_SCHEMAS_DIR, reader_schema: str | Path | None = None) -> None:
        codec = EventCodec.from_dir(schemas_dir)
        self._codec = codec
        self.reader = load_schema(Path(reader_schema)) if reader_schema is not None else codec.schema
        self._reader_fingerprint = schema_fingerprint(self.reader)
        codec.known_writers.setdefault(self._reader_fingerprint, self.reader)

    def decode(self, payload: bytes) -> dict[str, Any]:
        try:
            fingerprint = self._codec.writer_of(payload)
            writer = self._codec.known_writers[fingerprint]
            reader = None if fingerprint == self._reader_fingerprint else self.reader
            return fastavro.schemaless_reader(io.BytesIO(payload[HEADER_LENGTH:]), writer, reader)  # type: ignore[return-value]
        except Exception as exc:  # whatever fastavro raises on bytes it cannot read, with one name
            raise UndecodableEvent(f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Delivered:
    """One message of the topic, decoded."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int
    event: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.event["event_id"])

    @property
    def tenant(self) -> str:
        """The tenant ("" for the tenant-less routes): the event's field, else the header (v1 events)."""
        found = self.event.get("tenant") or dict(self.headers).get(TENANT_HEADER, b"").decode()
        return str(found)


def delivered(record: ConsumerRecord[bytes, bytes], event: dict[str, Any]) -> Delivered:
    headers = tuple((name, bytes(value)) for name, value in record.headers or ())
    return Delivered(record.topic, record.partition, record.offset, record.key, headers, record.timestamp, event)


class Verdict(enum.Enum):
    FIRST = "first"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


def billing_values(event: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(event.get(name) for name in BILLING_FIELDS)


def micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


class DedupeWindow:
    """Which copy of an event wins (the first seen) and how long its id is remembered.

    Stream time is the newest ``received_at`` seen so far, so a job catching up on a backlog judges
    the backlog by its own times, not by the wall clock. An id is forgotten once stream time has moved
    ``max_age`` past the moment it was first seen, or when ``max_ids`` newer ids push it out. A copy
    that arrives after its id was forgotten counts as a first copy again.
    """

    def __init__(self, max_age: timedelta = DEFAULT_MAX_AGE, max_ids: int = DEFAULT_MAX_IDS) -> None:
        if max_ids <= 0 or max_age <= timedelta(0):
            raise ValueError("max_age and max_ids must be positive")
        self.max_age_us = max_age // _MICROSECOND
        self.max_ids = max_ids
        self.clock_us = 0
        self._billing: dict[bytes | str, int] = {}  # id -> hash of the first copy's billing values
        self._order: deque[bytes | str] = deque()  # ids, first seen first
        self._seen_at: deque[list[int]] = deque()  # [second of stream time, ids first seen in it], oldest first
        self.forgotten_by_count = 0

    def __len__(self) -> int:
        return len(self._billing)

    def judge(self, event_id: str, received_at_us: int, billing: tuple[Any, ...]) -> Verdict:
        """The verdict on one copy; a first copy is remembered from now on."""
        self.clock_us = max(self.clock_us, received_at_us)
        self._expire()
        key = _compact(event_id)
        first = self._billing.get(key)
        if first is not None:
            return Verdict.DUPLICATE if first == hash(billing) else Verdict.CONFLICT
        self._billing[key] = hash(billing)
        self._order.append(key)
        second = self.clock_us - self.clock_us % _US_PER_S  # ids first seen within one second share a count
        if self._seen_at and self._seen_at[-1][0] == second:
            self._seen_at[-1][1] += 1
        else:
            self._seen_at.append([second, 1])
        while len(self._order) > self.max_ids:
            self._forget_oldest()
            self.forgotten_by_count += 1
        return Verdict.FIRST

    def horizon(self) -> timedelta:
        """How far back in stream time ids are remembered now (shorter than ``max_age`` when
        ``max_ids`` binds: then raise it, or expect duplicates older than this to pass)."""
        if not self._seen_at:
            return timedelta(0)
        return (self.clock_us - self._seen_at[0][0]) * _MICROSECOND

    def _expire(self) -> None:
        cutoff = self.clock_us - self.max_age_us
        while self._seen_at and self._seen_at[0][0] < cutoff:
            for _ in range(self._seen_at[0][1]):
                self._forget_oldest()

    def _forget_oldest(self) -> None:
        del self._billing[self._order.popleft()]
        self._seen_at[0][1] -= 1
        if self._seen_at[0][1] == 0:
            self._seen_at.popleft()


def billing_digest(billing: tuple[Any, ...]) -> bytes:
    """The same for equal billing values in every process (``hash`` of text is salted per process);
    an equal amount written with another scale gives the same digest."""
    text = repr(tuple(value.normalize() if isinstance(value, Decimal) else value for value in billing))
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


class DurableIds:
    """The dedupe rule against ids kept on disk (SQLite), for ``max_age`` of stream time and at most
    ``max_ids`` ids, as ``DedupeWindow``. First copies judged are pending until ``keep`` writes them, once
    the job has the batch; ``drop_pending`` forgets them (the batch was not processed)."""

    def __init__(self, path: Path, max_age: timedelta = DEFAULT_MAX_AGE, max_ids: int = DEFAULT_MAX_IDS) -> None:
        if max_ids <= 0 or max_age <= timedelta(0):
            raise ValueError("max_age and max_ids must be positive")
        self.max_age_us = max_age // _MICROSECOND
        self.max_ids = max_ids
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS ids (id BLOB PRIMARY KEY, billing BLOB, seen_us INTEGER)")
        self._db.execute("CREATE INDEX IF NOT EXISTS ids_by_time ON ids (seen_us)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        self.clock_us = int(self.get("clock_us") or 0)
        self._pending: dict[bytes, tuple[bytes, int]] = {}

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count() FROM ids").fetchone()[0]) + len(self._pending)

    def get(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, name: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def judge(self, event_id: str, received_at_us: int, billing: tuple[Any, ...]) -> Verdict:
        self.clock_us = max(self.clock_us, received_at_us)
        key = _id_bytes(event_id)
        digest = billing_digest(billing)
        first = self._pending.get(key)
        if first is None:
            row = self._db.execute(
                "SELECT billing FROM ids WHERE id = ? AND seen_us >= ?", (key, self.clock_us - self.max_age_us)
            ).fetchone()
            first = None if row is None else (bytes(row[0]), 0)
        if first is not None:
            return Verdict.DUPLICATE if first[0] == digest else Verdict.CONFLICT
        self._pending[key] = (digest, self.clock_us)
        return Verdict.FIRST

    def keep(self) -> None:
        """Write the pending first copies, durably, and forget what is out of the window."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO ids (id, billing, seen_us) VALUES (?, ?, ?)",
                [(key, digest, seen) for key, (digest, seen) in self._pending.items()],
            )
            self._db.execute("DELETE FROM ids WHERE seen_us < ?", (self.clock_us - self.max_age_us,))
            excess = int(self._db.execute("SELECT count() FROM ids").fetchone()[0]) - self.max_ids
            if excess > 0:
                self._db.execute("DELETE FROM ids WHERE id IN (SELECT id FROM ids ORDER BY seen_us LIMIT ?)", (excess,))
            self.put("clock_us", str(self.clock_us))
        self._pending.clear()

    def drop_pending(self) -> None:
        self._pending.clear()

    def close(self) -> None:
        self._db.close()


def _id_bytes(event_id: str) -> bytes:
    compact = _compact(event_id)
    return compact if isinstance(compact, bytes) else compact.encode()


def _compact(event_id: str) -> bytes | str:
    """An event id as remembered: its 16 bytes (ids are 32 hex digits), or as given if it is not hex."""
    try:
        return bytes.fromhex(event_id)
    except ValueError:
        return event_id


@dataclass
class Batch:
    """What one poll brought, sorted by the dedupe rule. ``events`` may be empty (a batch of copies)."""

    events: list[Delivered] = field(default_factory=list)
    duplicates: list[Delivered] = field(default_factory=list)
    #: Later copies whose billing values differ from the first copy's: not billed, worth a look.
    conflicts: list[Delivered] = field(default_factory=list)
    #: Per (topic, partition), the offset committed once the callback returns.
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    #: The broker's cluster id when the batch was fetched: offsets mean something only within one.
    incarnation: str | None = None

    def add(self, verdict: Verdict, copy: Delivered) -> None:
        {Verdict.FIRST: self.events, Verdict.DUPLICATE: self.duplicates, Verdict.CONFLICT: self.conflicts}[
            verdict
        ].append(copy)
        self.next_offsets[(copy.topic, copy.partition)] = copy.offset + 1


@dataclass
class Summary:
    batches: int = 0
    events: int = 0
    duplicates: int = 0
    conflicts: int = 0
    #: Messages re-read before the committed offsets to remember their ids (not handed to the job).
    remembered: int = 0
    #: Times the broker was found to have started afresh (a new cluster id) while or since last running.
    incarnations: int = 0


#: The job's callback: a plain function runs in a worker thread (the consumer keeps its group
#: membership alive meanwhile); a coroutine function runs on the consumer's loop.
Process = Callable[[Batch], Awaitable[None] | None]


class NormalizedConsumer:
    """A member of consumer group ``group`` on the normalized topic; see the module's docstring."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        *,
        topic: str = DEFAULT_TOPIC,
        decoder: EventDecoder | None = None,
        window: DedupeWindow | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        start_at: str = "earliest",
        kafka_options: Mapping[str, Any] | None = None,
        state_dir: str | Path | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.topic = topic
        self.decoder = decoder or EventDecoder()
        self.window = window or DedupeWindow()
        self.max_batch = max_batch
        if start_at not in START_POLICIES:
            raise ValueError(f"start_at must be one of {', '.join(START_POLICIES)}")
        self.start_at = start_at  # where a group without committed offsets starts
        self.kafka_options = dict(kafka_options or {})  # e.g. security_protocol, sasl_*, session_timeout_ms
        self.summary = Summary()
        #: The durable id store; without a state_dir the ids live in memory only (and die with a broker).
        self.ids = (
            DurableIds(
                Path(state_dir) / f"{group}{ID_STORE_SUFFIX}",
                self.window.max_age_us * _MICROSECOND,
                self.window.max_ids,
            )
            if state_dir is not None
            else None
        )
        self.incarnation: str | None = self.ids.get("incarnation") if self.ids is not None else None
        self._kept_incarnation = self.incarnation
        self._from_start = False  # a new incarnation: partitions without committed offsets start at the beginning
        self._planned: set[TopicPartition] = set()  # assigned partitions sought back over the window
        self._remember_below: dict[TopicPartition, int] = {}  # below it, records are only remembered

    async def run(
        self, process: Process, *, stop: asyncio.Event | None = None, until_caught_up: bool = False
    ) -> Summary:
        """Consume until ``stop`` is set or, with ``until_caught_up``, until every assigned partition
        is read up to its end (for a job run from cron)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            auto_offset_reset=self.start_at,
            **{**self.kafka_options, "enable_auto_commit": False},
        )
        consumer.subscribe([self.topic], listener=_ForgetRevoked(self))
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **_admin_options(self.kafka_options))
        try:
            await admin.start()
            await consumer.start()
            first = await _cluster_id(admin, stop)
            if first is not None:
                self._notice(first)
            while stop is None or not stop.is_set():
                records = await self._fetch(consumer)
                now = await _cluster_id(admin, stop)
                if now is None:
                    break  # stopped while the broker did not answer: nothing of this fetch was used
                batch = self._sort(records)
                if batch.next_offsets:
                    await _call(process, batch)
                    if self.ids is not None:
                        self.ids.keep()
                    if now == batch.incarnation:
                        await self._commit(consumer, batch.next_offsets)
                        self._keep_incarnation(now)
                if now != self.incarnation:
                    await self._new_incarnation(consumer, now)
                    continue
                if until_caught_up and await _caught_up(consumer):
                    break
        finally:
            await consumer.stop()
            await admin.close()
            if self.ids is not None:
                self.ids.close()
        return self.summary

    def _notice(self, incarnation: str) -> None:
        """The broker's cluster id at the start: one other than the one the id store last saw means the
        topic started afresh since the last run."""
        if self.incarnation is not None and incarnation != self.incarnation:
            self._started_afresh(self.incarnation, incarnation)
        self._set_incarnation(incarnation)

    async def _new_incarnation(self, consumer: AIOKafkaConsumer, incarnation: str) -> None:
        """The broker started afresh while running: read every partition of its topic from the start."""
        self._started_afresh(self.incarnation, incarnation)
        self._set_incarnation(incarnation)
        self._planned.clear()
        self._remember_below.clear()
        assigned = consumer.assignment()
        if assigned:
            await consumer.seek_to_beginning(*assigned)

    def _started_afresh(self, old: str | None, new: str) -> None:
        self.summary.incarnations += 1
        self._from_start = True
        log.warning(
            "the broker started afresh (new cluster id): reading the topic from its start; the id store sets "
            "aside what was billed before",
            extra={"old_incarnation": old, "incarnation": new, "durable_ids": self.ids is not None},
        )

    def _set_incarnation(self, incarnation: str) -> None:
        self.incarnation = incarnation

    def _keep_incarnation(self, incarnation: str) -> None:
        """Once something of an incarnation is committed, the id store remembers it: a run that stops
        before that finds the broker new again at its next start, and reads from the start again."""
        if self.ids is not None and self._kept_incarnation != incarnation:
            self.ids.put("incarnation", incarnation)
            self._kept_incarnation = incarnation

    def _sort(self, records: Iterable[ConsumerRecord[bytes, bytes]]) -> Batch:
        """Every record judged by the window; those below a partition's committed offset are only
        remembered, the others go to the batch by their verdict."""
        batch = Batch(incarnation=self.incarnation)
        judge = self.ids.judge if self.ids is not None else self.window.judge
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            copy = self._decode(record)
            verdict = judge(copy.event_id, micros(copy.event["received_at"]), billing_values(copy.event))
            if record.offset < self._remember_below.get(tp, 0):
                self.summary.remembered += 1
                continue
            self._remember_below.pop(tp, None)
            batch.add(verdict, copy)
        self.summary.batches += bool(batch.next_offsets)
        self.summary.events += len(batch.events)
        self.summary.duplicates += len(batch.duplicates)
        self.summary.conflicts += len(batch.conflicts)
        for copy in batch.conflicts:
            log.warning(
                "conflicting copy set aside: the first copy's billing values win",
                extra={"event_id": copy.event_id, "offset": copy.offset},
            )
        return batch

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> Delivered:
        try:
            return delivered(record, self.decoder.decode(record.value or b""))
        except UndecodableEvent as exc:
            raise UndecodableEvent(f"{record.topic}[{record.partition}] offset {record.offset}: {exc}") from exc

    async def _commit(self, consumer: AIOKafkaConsumer, next_offsets: Mapping[tuple[str, int], int]) -> None:
        try:
            await consumer.commit(
                {TopicPartition(topic, partition): offset for (topic, partition), offset in next_offsets.items()}
            )
        except (
            CommitFailedError,
            IllegalStateError,
        ) as exc:  # a rebalance took the partition: its new owner reads the batch again
            log.warning(
                "commit refused after a rebalance; the batch will be delivered again", extra={"error": str(exc)}
            )

    async def _fetch(self, consumer: AIOKafkaConsumer) -> list[ConsumerRecord[bytes, bytes]]:
        """The next records. A partition newly assigned is first sought back over the window before
        its committed offset; whatever was fetched for it before that is dropped, and read again."""
        fetched = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=self.max_batch)
        fresh = [tp for tp in consumer.assignment() if tp not in self._planned]
        for tp in fresh:
            part = fetched.get(tp)
            await self._seek_back(consumer, tp, part[0].offset if part else None)
            self._planned.add(tp)
        return [record for tp, part in fetched.items() if tp not in fresh for record in part]

    async def _seek_back(self, consumer: AIOKafkaConsumer, tp: TopicPartition, first_fetched: int | None) -> None:
        committed = await consumer.committed(tp)
        if committed is None and self._from_start:  # a topic started afresh: all of it, whatever start_at says
            await consumer.seek_to_beginning(tp)
            return
        resume_at = committed if committed is not None else first_fetched
        if resume_at is None:  # nothing committed, nothing read yet: the position stands
            return
        start = resume_at
        if committed:
            beginning = (await consumer.beginning_offsets([tp]))[tp]
            since_ms = int(time.time() * _MS_PER_S) - self.window.max_age_us // _US_PER_MS  # published since
            found = (await consumer.offsets_for_times({tp: since_ms})).get(tp)
            start = max(beginning, committed - self.window.max_ids, found.offset if found is not None else committed)
        consumer.seek(tp, min(start, resume_at))
        if start < resume_at:
            self._remember_below[tp] = resume_at


class _ForgetRevoked(ConsumerRebalanceListener):  # type: ignore[misc]
    """A partition taken away is sought back again if it comes back (its new committed offset)."""

    def __init__(self, owner: NormalizedConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.owner._planned.discard(tp)
            self.owner._remember_below.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None  # sought back by the consuming loop, before any of its records is used


async def _cluster_id(admin: AIOKafkaAdminClient, stop: asyncio.Event | None) -> str | None:
    """The broker's cluster id, asked until it answers (a broker restarting does not, for a while);
    None when ``stop`` is set meanwhile."""
    while stop is None or not stop.is_set():
        try:
            found = (await admin.describe_cluster()).get("cluster_id")
            return str(found or "")
        except KafkaError as exc:
            log.info("broker not answering for its cluster id; asking again", extra={"error": repr(exc)})
            await asyncio.sleep(INCARNATION_RETRY_S)
    return None


#: The consumer options an admin client takes too (how to reach and authenticate to the brokers).
_ADMIN_OPTIONS = (
    "security_protocol",
    "ssl_context",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "sasl_kerberos_service_name",
    "sasl_kerberos_domain_name",
    "sasl_oauth_token_provider",
    "client_id",
    "request_timeout_ms",
    "connections_max_idle_ms",
    "metadata_max_age_ms",
)


def _admin_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in options.items() if name in _ADMIN_OPTIONS}


async def _call(process: Process, batch: Batch) -> None:
    if inspect.iscoroutinefunction(process):
        await process(batch)
        return
    result = await asyncio.to_thread(process, batch)
    if inspect.isawaitable(result):
        await result


async def _caught_up(consumer: AIOKafkaConsumer) -> bool:
    """Whether every assigned partition is read up to its end, as the last fetch of it saw the end."""
    assigned = consumer.assignment()
    if not assigned:
        return False
    try:
        for tp in assigned:
            end = consumer.highwater(tp)
            if end is None or await consumer.position(tp) < end:
                return False
    except IllegalStateError:  # a rebalance is under way
        return False
    return True


#: Where ``read`` starts: the topic's beginning, its end (what comes next), or a time of publication.
Start = datetime | Literal["beginning", "end"]
#: How long ``read`` waits for the topic to show up in the broker's metadata.
TOPIC_WAIT_S = 10.0
TOPIC_WAIT_STEP_S = 0.2


async def read(
    bootstrap: str,
    start: Start = "end",
    *,
    topic: str = DEFAULT_TOPIC,
    decoder: EventDecoder | None = None,
    follow: bool = True,
    on_undecodable: Callable[[ConsumerRecord[bytes, bytes], UndecodableEvent], None] | None = None,
    kafka_options: Mapping[str, Any] | None = None,
) -> AsyncGenerator[Delivered, None]:
    """Every message of ``topic`` from ``start``, without a consumer group: nothing is committed and no
    copy is set aside — for looking at the stream (``ringback tail``), not for billing. Without
    ``follow`` it ends where the topic ended when each partition was first fetched. A message that does
    not decode goes to ``on_undecodable`` (raised when there is none)."""
    decoder = decoder or EventDecoder()
    records = read_records(bootstrap, start, topic=topic, follow=follow, kafka_options=kafka_options)
    try:
        async for record in records:
            try:
                event = decoder.decode(record.value or b"")
            except UndecodableEvent as exc:
                if on_undecodable is None:
                    raise
                on_undecodable(record, exc)
                continue
            yield delivered(record, event)
    finally:
        await records.aclose()


async def read_records(
    bootstrap: str,
    start: Start = "end",
    *,
    topic: str = DEFAULT_TOPIC,
    follow: bool = True,
    kafka_options: Mapping[str, Any] | None = None,
) -> AsyncGenerator[ConsumerRecord[bytes, bytes], None]:
    """The records of any topic from ``start``, undecoded, as ``read`` goes through them."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        **{**dict(kafka_options or {}), "enable_auto_commit": False},
    )
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(reader, topic))]
        reader.assign(partitions)
        skip_below = await _position(reader, partitions, start)
        while True:
            fetched = await reader.getmany(timeout_ms=POLL_TIMEOUT_MS)
            for record in (r for part in fetched.values() for r in part):
                if record.timestamp >= skip_below.get(record.partition, record.timestamp):
                    yield record
            if not follow and await _caught_up(reader):
                return
    finally:
        await reader.stop()


async def _partitions(reader: AIOKafkaConsumer, topic: str) -> set[int]:
    deadline = time.monotonic() + TOPIC_WAIT_S
    while not (found := reader.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            raise LookupError(f"topic {topic} does not exist")
        await reader.topics()
        await asyncio.sleep(TOPIC_WAIT_STEP_S)
    return set(found)


async def _position(reader: AIOKafkaConsumer, partitions: list[TopicPartition], start: Start) -> dict[int, int]:
    """Seek every partition to ``start``. Returns, per partition, the publish time (ms) below which its
    records are still to be skipped: a broker answers where a time begins by its own clock (the
    embedded one by when it appended, whole batches at a time), which may be earlier than asked."""
    if start == "beginning":
        await reader.seek_to_beginning(*partitions)
        return {}
    since_ms = micros(datetime.now(UTC) if start == "end" else start) // _US_PER_MS
    found = await reader.offsets_for_times(dict.fromkeys(partitions, since_ms))
    skip_below: dict[int, int] = {}
    for tp in partitions:
        answer = found.get(tp)
        if answer is None:  # nothing published since: from the end
            await reader.seek_to_end(tp)
        else:
            reader.seek(tp, answer.offset)
            skip_below[tp.partition] = since_ms
    return skip_below


def consume(bootstrap: str, group: str, process: Process, *, until_caught_up: bool = False, **options: Any) -> Summary:
    """``NormalizedConsumer(bootstrap, group, **options).run(process)`` for a synchronous job."""
    return asyncio.run(NormalizedConsumer(bootstrap, group, **options).run(process, until_caught_up=until_caught_up))


def json_ready(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event with money as exact decimal text and times as ISO 8601 UTC (``…Z``), for JSON."""
    return {name: _json_value(value) for name, value in event.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return iso_utc(value)
    return value


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
