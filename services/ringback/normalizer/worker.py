"""`ringback normalizer`: raw topic in; normalized Avro events and dead letters out; commit after both.

One poll is one unit of work: every raw message in it is normalized, every resulting event and dead
letter is published, all acknowledgements are awaited, and only then are the offsets committed. A
crash anywhere before the commit replays the poll (at-least-once); deterministic event ids make the
replayed events collapse downstream.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from ringback import __version__, logs, metrics
from ringback.config import Settings
from ringback.normalizer.adapters import Adapter, registry
from ringback.normalizer.event import Context
from ringback.normalizer.guard import DeadLetterGuard, RequestVerdict, Trip
from ringback.normalizer.outcome import Outcome, Rejected, Rejection
from ringback.runtime import kafka, progress
from ringback.runtime.avro import EventCodec
from ringback.runtime.batched_sends import BatchedSends, ends_of
from ringback.runtime.dead_letter import WHOLE_REQUEST, DeadLetter, Failure
from ringback.runtime.drain import drain
from ringback.runtime.ledger import NORMALIZER_DEAD_LETTERS, NORMALIZER_EVENTS, NORMALIZER_RAW, NORMALIZER_REPORTS, Ledger
from ringback.runtime.raw import RawCallback

POLL_TIMEOUT_MS = 200
RETRY_PAUSE_S = 0.5
#: Fields whose value keeps one call's / one message's events in order on one partition.
ORDERING_KEY_FIELDS = ("call_id", "request_id", "sid")

log = logs.get(__name__)


def normalize_message(raw: RawCallback, adapters: dict[str, Adapter], ctx: Context) -> list[Outcome]:
    """Everything one raw message turns into; never raises."""
    adapter = adapters.get(raw.route)
    if adapter is None:
        return [Rejection("unknown_route", f"no adapter for route {raw.route!r}")]
    try:
        return adapter.normalize(raw, ctx)
    except Rejected as rejected:
        return [Rejection.of(rejected)]
    except Exception as exc:  # a bug in an adapter must dead-letter the input, not stop the worker
        log.exception("adapter failed", route=raw.route, ingest_id=raw.ingest_id)
        return [Rejection("internal_error", f"{type(exc).__name__}: {exc}")]


def failures_of(outcomes: list[Outcome]) -> list[Failure]:
    return [
        Failure(WHOLE_REQUEST if o.report_index is None else o.report_index, o.reason_type, o.message)
        for o in outcomes
        if isinstance(o, Rejection)
    ]


def reports_in(outcomes: list[Outcome]) -> int:
    """How many vendor reports the request held (0 when it could not be read as a whole)."""
    return sum(1 for o in outcomes if not isinstance(o, Rejection) or o.report_index is not None)


def verdict_of(raw: RawCallback, outcomes: list[Outcome]) -> RequestVerdict:
    bad = all(isinstance(o, Rejection) for o in outcomes)
    return RequestVerdict(bad=bad, body_digest=hashlib.blake2b(raw.body, digest_size=16).digest() if bad else b"")


def ordering_key(event: dict[str, Any]) -> bytes:
    for name in ORDERING_KEY_FIELDS:
        if event.get(name):
            return f"{event['source']}:{event[name]}".encode()
    return str(event["event_id"]).encode()


class Normalizer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.codec = EventCodec.from_dir(settings.schemas_dir)
        self.ctx = Context(blank_event=self.codec.blank_event(), source_timezone=settings.source_timezone, normalizer_version=__version__)
        self.adapters = registry()
        self.ledger = Ledger()
        self.guard = DeadLetterGuard(
            settings.dlq_guard_ratio, settings.dlq_guard_window, settings.dlq_guard_min_requests, settings.dlq_guard_min_distinct, settings.dlq_guard_pause_s
        )
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.healthy = False

    async def start(self) -> None:
        await kafka.ensure_topics_if_allowed(self.settings)
        self.producer = kafka.producer(self.settings)
        await self.producer.start()
        self.consumer = kafka.consumer(self.settings, [self.settings.topic_raw], self.settings.normalizer_group)
        await self.consumer.start()
        self.healthy = True
        log.info("normalizer consuming", topic=self.settings.topic_raw, group=self.settings.normalizer_group, routes=sorted(self.adapters))

    async def stop(self) -> None:
        self.healthy = False
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def run(self, stop: asyncio.Event) -> None:
        assert self.consumer is not None
        while not stop.is_set():
            await self.process_poll()
        await self.drain()

    async def drain(self) -> None:
        """On shutdown, finish what is already on the raw topic (bounded by drain_timeout_s)."""
        await drain(self.process_poll, self.settings.drain_timeout_s)

    async def process_poll(self) -> int:
        assert self.consumer is not None and self.producer is not None
        if self.guard.tripped:
            return await self._wait_out_the_guard()
        batches = await self.consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=self.settings.normalizer_max_records)
        if not batches:
            return 0
        started = time.perf_counter()
        try:
            count = await self._publish_and_commit(batches)
        except KafkaError as exc:
            # Not acknowledged or not committed: rewind so this poll is processed again, never skipped.
            self._rewind(batches)
            log.warning("poll not completed, will retry it", error=repr(exc))
            await asyncio.sleep(RETRY_PAUSE_S)
            return 0
        metrics.NORMALIZER_BATCH_SECONDS.observe(time.perf_counter() - started)
        return count

    def _rewind(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        assert self.consumer is not None
        for partition, records in batches.items():
            self.consumer.seek(partition, records[0].offset)

    async def _wait_out_the_guard(self) -> int:
        """While tripped, keep the group membership alive without taking records (partitions paused)."""
        assert self.consumer is not None
        if self.guard.pause_over():
            self.consumer.resume(*self.consumer.assignment())
            self.guard.release()
            metrics.NORMALIZER_GUARD_TRIPPED.set(0)
            log.warning("dead-letter guard pause over: processing the held requests as they are")
            return 0
        self.consumer.pause(*self.consumer.assignment())  # also partitions assigned since the trip
        await self.consumer.getmany(timeout_ms=POLL_TIMEOUT_MS)
        return 0

    def _trip(self, batches: dict[TopicPartition, list[ConsumerRecord]], trip: Trip) -> None:
        assert self.consumer is not None
        self._rewind(batches)
        self.consumer.pause(*self.consumer.assignment())
        metrics.NORMALIZER_GUARD_TRIPPED.set(1)
        metrics.NORMALIZER_GUARD_TRIPS.inc()
        log.error("dead-letter guard tripped", detail=trip.describe(), pause_s=self.guard.pause_s,
                  action="look at ringback.dead_letters; deploy a fix (a restart clears the guard) or let the pause run out")

    def ready_reasons(self) -> list[str]:
        """Why this normalizer is not doing its job now (empty when it is)."""
        if self.guard.trip is not None:
            left = max(0.0, self.guard.trip.resumes_at - self.guard.clock())
            return [f"dead-letter guard tripped: {self.guard.trip.describe()}; resumes in {left:.0f}s"]
        return []

    async def _publish_and_commit(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> int:
        assert self.consumer is not None and self.producer is not None
        normalized = [(raw, normalize_message(raw, self.adapters, self.ctx)) for raw in self._raws(batches)]
        trip = self.guard.judge([verdict_of(raw, outcomes) for raw, outcomes in normalized])
        if trip is not None:
            self._trip(batches, trip)
            return 0
        sends = BatchedSends(self.producer)
        published: Counter[tuple[Any, str, str]] = Counter()  # (metric, route, kind), counted once committed
        for raw, outcomes in normalized:
            await self._publish_outcomes(sends, raw, outcomes, published)
        ledger_delta = self.ledger.take()  # a poll that fails is replayed, and counted, again
        if ledger_delta is not None:
            await sends.add(self.settings.topic_ledger, ledger_delta)
        deliveries = await sends.flush()
        acknowledged = await asyncio.gather(*(d.future for d in deliveries))  # every event and dead letter (acks=all)
        if self.settings.journal_enabled:
            await self._claim(batches, ends_of(deliveries, acknowledged))
        await self.consumer.commit({partition: records[-1].offset + 1 for partition, records in batches.items()})
        for route, n in Counter(raw.route for raw, _ in normalized).items():
            metrics.NORMALIZER_MESSAGES.labels(route).inc(n)
        for (metric, route, kind), n in published.items():
            metric.labels(route, kind).inc(n)
        return len(normalized)

    @staticmethod
    def _raws(batches: dict[TopicPartition, list[ConsumerRecord]]) -> list[RawCallback]:
        return [
            RawCallback.from_message(record.topic, record.partition, record.offset, record.value, record.headers)
            for records in batches.values()
            for record in records
        ]

    async def _claim(self, batches: dict[TopicPartition, list[ConsumerRecord]], ends: dict[tuple[str, int], int]) -> None:
        """Say on the progress topic that this poll's raw records have all their outputs below ``ends``
        (read by the edges, whose journals let go of callbacks once the sink stored those outputs)."""
        assert self.producer is not None
        outputs = {progress.key(topic, partition): end for (topic, partition), end in ends.items() if topic != self.settings.topic_ledger}
        ranges = {tp.partition: (records[0].offset, records[-1].offset + 1) for tp, records in batches.items()}
        await (await self.producer.send(self.settings.topic_progress, progress.claim_message(self.settings.topic_raw, ranges, outputs)))

    async def _publish_outcomes(self, sends: BatchedSends, raw: RawCallback, outcomes: list[Outcome], published: Counter[tuple[Any, str, str]]) -> None:
        """Every event of one request, then at most one dead letter for all that failed in it."""
        failures = failures_of(outcomes)
        events = 0
        for outcome in outcomes:
            if isinstance(outcome, Rejection):
                continue
            try:
                payload = self.codec.encode(outcome)
            except (ValueError, TypeError) as exc:  # an adapter produced a value the schema refuses
                failures.append(Failure(int(outcome.get("report_index", WHOLE_REQUEST)), "schema_violation", str(exc)))
                continue
            await sends.add(self.settings.topic_normalized, payload, key=ordering_key(outcome))
            published[(metrics.NORMALIZER_EVENTS, raw.route, outcome["event_type"])] += 1
            events += 1
        self.ledger.count(NORMALIZER_RAW, raw.route, raw.received_at_us)
        self.ledger.count(NORMALIZER_REPORTS, raw.route, raw.received_at_us, reports_in(outcomes))
        self.ledger.count(NORMALIZER_EVENTS, raw.route, raw.received_at_us, events)
        if failures:
            await self._dead_letter(sends, DeadLetter.of(raw, failures, reports_in(outcomes), __version__), published)
            self.ledger.count(NORMALIZER_DEAD_LETTERS, raw.route, raw.received_at_us)

    async def _dead_letter(self, sends: BatchedSends, letter: DeadLetter, published: Counter[tuple[Any, str, str]]) -> None:
        raw = letter.raw
        for reason, n in letter.failure_counts.items():
            published[(metrics.NORMALIZER_DEAD_LETTERS, raw.route, reason)] += n
        log.info(
            "dead-lettered", route=raw.route, ingest_id=raw.ingest_id, reason=letter.failure_type, detail=letter.failure_message,
            report_index=letter.report_index, failed_reports=letter.failed_reports, reports=letter.report_count,
        )
        await sends.add(self.settings.topic_dlq, raw.body, key=raw.ingest_id.encode(), headers=letter.headers())
