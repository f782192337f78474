"""`ringback normalizer`: raw topic in; normalized Avro events and dead letters out; commit after both.

One poll is one unit of work: every raw message in it is normalized, every resulting event and dead
letter is published, all acknowledgements are awaited, and only then are the offsets committed. A
crash anywhere before the commit replays the poll (at-least-once); deterministic event ids make the
replayed events collapse downstream.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from ringback import __version__, logs, metrics
from ringback.config import Settings
from ringback.normalizer.adapters import Adapter, registry
from ringback.normalizer.event import Context
from ringback.normalizer.guard import DeadLetterGuard
from ringback.normalizer.outcome import Outcome, Rejected, Rejection
from ringback.runtime import kafka
from ringback.runtime.avro import EventCodec
from ringback.runtime.batched_sends import BatchedSends
from ringback.runtime.dead_letter import WHOLE_REQUEST, DeadLetter
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


def count_outcomes(ledger: Ledger, raw: RawCallback, outcomes: list[Outcome]) -> None:
    dead = [o for o in outcomes if isinstance(o, Rejection)]
    reports = [o for o in outcomes if not isinstance(o, Rejection) or o.report_index is not None]
    ledger.count(NORMALIZER_RAW, raw.route, raw.received_at_us)
    ledger.count(NORMALIZER_REPORTS, raw.route, raw.received_at_us, len(reports))
    ledger.count(NORMALIZER_EVENTS, raw.route, raw.received_at_us, len(outcomes) - len(dead))
    ledger.count(NORMALIZER_DEAD_LETTERS, raw.route, raw.received_at_us, len(dead))


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
        self.guard = DeadLetterGuard(settings.dlq_guard_ratio, settings.dlq_guard_window, settings.dlq_guard_min_outcomes)
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
        batches = await self.consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=self.settings.normalizer_max_records)
        if not batches:
            return 0
        started = time.perf_counter()
        try:
            count = await self._publish_and_commit(batches)
        except KafkaError as exc:
            # Not acknowledged or not committed: rewind so this poll is processed again, never skipped.
            for partition, records in batches.items():
                self.consumer.seek(partition, records[0].offset)
            log.warning("poll not completed, will retry it", error=repr(exc))
            await asyncio.sleep(RETRY_PAUSE_S)
            return 0
        metrics.NORMALIZER_BATCH_SECONDS.observe(time.perf_counter() - started)
        return count

    async def _publish_and_commit(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> int:
        assert self.consumer is not None and self.producer is not None
        normalized = [(raw, normalize_message(raw, self.adapters, self.ctx)) for raw in self._raws(batches)]
        self.guard.check([isinstance(o, Rejection) for _, outcomes in normalized for o in outcomes])
        sends = BatchedSends(self.producer)
        published: Counter[tuple[Any, str, str]] = Counter()  # (metric, route, kind), counted once committed
        for raw, outcomes in normalized:
            await self._publish_outcomes(sends, raw, outcomes, published)
            count_outcomes(self.ledger, raw, outcomes)
        ledger_delta = self.ledger.take()  # a poll that fails is replayed, and counted, again
        if ledger_delta is not None:
            await sends.add(self.settings.topic_ledger, ledger_delta)
        deliveries = await sends.flush()
        if deliveries:
            await asyncio.gather(*deliveries)  # every event and dead letter acknowledged (acks=all)
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

    async def _publish_outcomes(self, sends: BatchedSends, raw: RawCallback, outcomes: list[Outcome], published: Counter[tuple[Any, str, str]]) -> None:
        for outcome in outcomes:
            if isinstance(outcome, Rejection):
                await self._dead_letter(sends, raw, outcome, published)
                continue
            try:
                payload = self.codec.encode(outcome)
            except (ValueError, TypeError) as exc:  # an adapter produced a value the schema refuses
                await self._dead_letter(sends, raw, Rejection("schema_violation", str(exc), outcome.get("report_index")), published)
                continue
            await sends.add(self.settings.topic_normalized, payload, key=ordering_key(outcome))
            published[(metrics.NORMALIZER_EVENTS, raw.route, outcome["event_type"])] += 1

    async def _dead_letter(self, sends: BatchedSends, raw: RawCallback, rejection: Rejection, published: Counter[tuple[Any, str, str]]) -> None:
        letter = DeadLetter(
            raw=raw,
            failure_type=rejection.reason_type,
            failure_message=rejection.message,
            normalizer_version=__version__,
            report_index=WHOLE_REQUEST if rejection.report_index is None else rejection.report_index,
        )
        published[(metrics.NORMALIZER_DEAD_LETTERS, raw.route, rejection.reason_type)] += 1
        log.info("dead-lettered", route=raw.route, ingest_id=raw.ingest_id, reason=rejection.reason_type, detail=rejection.message, report_index=letter.report_index)
        await sends.add(self.settings.topic_dlq, raw.body, key=raw.ingest_id.encode(), headers=letter.headers())
