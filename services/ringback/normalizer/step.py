"""The normalizer's step: raw callbacks in; normalized Avro events and dead letters out.

One poll is one unit of work: every raw message in it is normalized, every resulting event and dead
letter is published, all acknowledgements are awaited (and, when edges journal, a progress claim
published), and only then does the step report the poll finished, so the driver commits it. A crash
anywhere before the commit replays the poll (at-least-once); deterministic event ids make the
replayed events collapse downstream.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ringback import __version__, logs, metrics
from ringback.config import Settings
from ringback.normalizer.adapters import Adapter, registry
from ringback.normalizer.event import Context
from ringback.normalizer.guard import DeadLetterGuard, RequestVerdict
from ringback.normalizer.outcome import Event, Outcome, Rejected, Rejection
from ringback.normalizer.phones import carrier_and_region
from ringback.runtime import progress
from ringback.runtime.avro import EventCodec
from ringback.runtime.batched_sends import BatchedSends, ends_of
from ringback.runtime.dead_letter import WHOLE_REQUEST, DeadLetter, Failure
from ringback.runtime.kafka import BrokerError
from ringback.runtime.ledger import (
    NORMALIZER_DEAD_LETTERS,
    NORMALIZER_EVENTS,
    NORMALIZER_RAW,
    NORMALIZER_REPORTS,
    REPLAY_RAW,
    Ledger,
)
from ringback.runtime.raw import H_TENANT, RawCallback
from ringback.runtime.stream.backend import Message, Partition, Producer
from ringback.runtime.stream.errors import Hold, RetryLater

PUBLISH = "publish"
TENANT_HEADER = H_TENANT
POLL_TIMEOUT_MS = 200
#: Fields whose value keeps one call's / one message's events in order on one partition.
ORDERING_KEY_FIELDS = ("call_id", "request_id", "sid")

log = logs.get(__name__)


def normalize_message(raw: RawCallback, adapters: dict[str, Adapter], ctx: Context) -> list[Outcome]:
    """Everything one raw message turns into; never raises."""
    adapter = adapters.get(raw.route)
    if adapter is None:
        return [Rejection("unknown_route", f"no adapter for route {raw.route!r}")]
    try:
        outcomes = adapter.normalize(raw, ctx)
    except Rejected as rejected:
        return [Rejection.of(rejected)]
    except Exception as exc:  # a bug in an adapter must dead-letter the input, not stop the worker
        log.exception("adapter failed", route=raw.route, ingest_id=raw.ingest_id)
        return [Rejection("internal_error", f"{type(exc).__name__}: {exc}")]
    for outcome in outcomes:
        if not isinstance(outcome, Rejection):
            complete(outcome, raw)
    return outcomes


def complete(event: Event, raw: RawCallback) -> None:
    """What every event gets whatever its adapter: the carrier and region of the reported party's number
    (the tenant's app_id is the adapters' to give: ``normalizer.event.TENANT_APP_SOURCES``)."""
    event["carrier"], event["region"] = carrier_and_region(event["to_e164"] or event["from_e164"])


def failures_of(outcomes: list[Outcome]) -> list[Failure]:
    return [
        Failure(WHOLE_REQUEST if o.report_index is None else o.report_index, o.reason_type, o.message, o.ids)
        for o in outcomes
        if isinstance(o, Rejection)
    ]


def reports_in(outcomes: list[Outcome]) -> int:
    """How many vendor reports the request held (0 when it could not be read as a whole)."""
    return sum(1 for o in outcomes if not isinstance(o, Rejection) or o.report_index is not None)


def verdict_of(raw: RawCallback, outcomes: list[Outcome]) -> RequestVerdict:
    bad = all(isinstance(o, Rejection) for o in outcomes)
    return RequestVerdict(bad=bad, body_digest=hashlib.blake2b(raw.body, digest_size=16).digest() if bad else b"")


def ordering_key(event: Mapping[str, object]) -> bytes:
    for name in ORDERING_KEY_FIELDS:
        if event.get(name):
            return f"{event['source']}:{event[name]}".encode()
    return str(event["event_id"]).encode()


def raw_of(message: Message) -> RawCallback:
    return RawCallback.from_message(
        message.topic, message.partition.index, message.offset, message.value, message.headers
    )


class NormalizeStep:
    """The normalizer's Strategy (see ringback.runtime.stream.driver)."""

    def __init__(self, settings: Settings, producer: Producer, guard: DeadLetterGuard) -> None:
        self.settings = settings
        self.producer = producer
        self.guard = guard
        self.codec = EventCodec.from_dir(settings.schemas_dir)
        self.ctx = Context(
            blank_event=self.codec.blank_event(),
            source_timezone=settings.source_timezone,
            normalizer_version=__version__,
            sms_reply_text=settings.sms_reply_text,
        )
        self.adapters = registry()
        self.ledger = Ledger()
        self._done: dict[Partition, int] = {}
        # Metrics count what is committed: a poll that is replayed is not counted twice.
        self._uncommitted_messages: Counter[str] = Counter()  # route -> raw messages
        self._uncommitted_replays: Counter[str] = Counter()  # route -> raw messages sent by `ringback replay`
        self._uncommitted_counts: Counter[tuple[Any, str, str]] = Counter()  # (metric, route, kind) -> n

    # --- Strategy ---
    async def submit(self, messages: list[Message]) -> None:
        started = time.perf_counter()
        normalized = [(raw, normalize_message(raw, self.adapters, self.ctx)) for raw in map(raw_of, messages)]
        self._judge(normalized)
        counts: Counter[tuple[Any, str, str]] = Counter()
        try:
            await self._publish(normalized, messages, counts)
        except BrokerError as exc:
            raise RetryLater(PUBLISH, exc) from exc
        for message in messages:
            self._done[message.partition] = message.next_offset
        self._uncommitted_counts.update(counts)
        self._uncommitted_messages.update(raw.route for raw, _ in normalized)
        self._uncommitted_replays.update(raw.route for raw, _ in normalized if raw.replayed_at_us)
        metrics.NORMALIZER_BATCH_SECONDS.observe(time.perf_counter() - started)

    async def poll(self) -> None:
        return None

    def committable(self) -> Mapping[Partition, int]:
        return self._done

    async def committed(self, offsets: Mapping[Partition, int]) -> None:
        for route, n in self._uncommitted_messages.items():
            metrics.NORMALIZER_MESSAGES.labels(route).inc(n)
        for route, n in self._uncommitted_replays.items():
            metrics.NORMALIZER_REPLAYED.labels(route).inc(n)
        for (metric, route, kind), n in self._uncommitted_counts.items():
            metric.labels(route, kind).inc(n)
        self._uncommitted_messages.clear()
        self._uncommitted_replays.clear()
        self._uncommitted_counts.clear()

    def ready_for_more(self) -> bool:
        return True

    def poll_limits(self) -> tuple[int, int]:
        return POLL_TIMEOUT_MS, self.settings.normalizer_max_records

    async def join(self) -> None:
        return None

    def not_ready_reasons(self) -> list[str]:
        if self.guard.trip is not None:
            left = max(0.0, self.guard.trip.resumes_at - self.guard.clock())
            return [f"dead-letter guard tripped: {self.guard.trip.describe()}; resumes in {left:.0f}s"]
        return []

    # --- the work ---
    def _judge(self, normalized: list[tuple[RawCallback, list[Outcome]]]) -> None:
        """Raise Hold when the dead-letter guard will not let this poll through (yet)."""
        if self.guard.tripped:
            if not self.guard.pause_over():
                assert self.guard.trip is not None
                raise Hold(self.guard.trip.resumes_at, "dead-letter guard tripped")
            self.guard.release()
            metrics.NORMALIZER_GUARD_TRIPPED.set(0)
            log.warning("dead-letter guard pause over: processing the held requests as they are")
        # Replays are an operator's choice, not live traffic: replaying old garbage must not pause ingestion.
        trip = self.guard.judge([verdict_of(raw, outcomes) for raw, outcomes in normalized if not raw.replayed_at_us])
        if trip is not None:
            metrics.NORMALIZER_GUARD_TRIPPED.set(1)
            metrics.NORMALIZER_GUARD_TRIPS.inc()
            log.error(
                "dead-letter guard tripped",
                detail=trip.describe(),
                pause_s=self.guard.pause_s,
                action=(
                    "look at ringback.dead_letters; deploy a fix (a restart clears the guard) or let the pause run out"
                ),
            )
            raise Hold(trip.resumes_at, trip.describe())

    async def _publish(
        self,
        normalized: list[tuple[RawCallback, list[Outcome]]],
        messages: list[Message],
        counts: Counter[tuple[Any, str, str]],
    ) -> None:
        sends = BatchedSends(self.producer)
        for raw, outcomes in normalized:
            await self._publish_outcomes(sends, raw, outcomes, counts)
        ledger_delta = self.ledger.take()  # a poll that fails is replayed, and counted, again
        if ledger_delta is not None:
            await sends.add(self.settings.topic_ledger, ledger_delta)
        deliveries = await sends.flush()
        acknowledged = await asyncio.gather(*(d.future for d in deliveries))  # every event and dead letter (acks=all)
        if self.settings.journal_enabled:
            await self._claim(messages, ends_of(deliveries, acknowledged))

    async def _claim(self, messages: list[Message], ends: dict[tuple[str, int], int]) -> None:
        """Say on the progress topic that this poll's raw records have all their outputs below ``ends``
        (read by the edges, whose journals let go of callbacks once the sink stored those outputs)."""
        outputs = {
            progress.key(topic, partition): end
            for (topic, partition), end in ends.items()
            if topic != self.settings.topic_ledger
        }
        ranges: dict[int, tuple[int, int]] = {}
        for message in messages:
            first, _ = ranges.get(message.partition.index, (message.offset, message.offset))
            ranges[message.partition.index] = (first, message.next_offset)
        await (
            await self.producer.send(
                self.settings.topic_progress, progress.claim_message(self.settings.topic_raw, ranges, outputs)
            )
        )

    async def _publish_outcomes(
        self, sends: BatchedSends, raw: RawCallback, outcomes: list[Outcome], published: Counter[tuple[Any, str, str]]
    ) -> None:
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
            # The tenant rides in a header too, so the sink can count by tenant without decoding the event.
            headers = [(TENANT_HEADER, raw.tenant.encode())] if raw.tenant else None
            await sends.add(self.settings.topic_normalized, payload, key=ordering_key(outcome), headers=headers)
            published[(metrics.NORMALIZER_EVENTS, raw.route, outcome["event_type"])] += 1
            events += 1
        self.ledger.count(
            REPLAY_RAW if raw.replayed_at_us else NORMALIZER_RAW, raw.route, raw.received_at_us, tenant=raw.tenant
        )
        self.ledger.count(NORMALIZER_REPORTS, raw.route, raw.received_at_us, reports_in(outcomes), tenant=raw.tenant)
        self.ledger.count(NORMALIZER_EVENTS, raw.route, raw.received_at_us, events, tenant=raw.tenant)
        if failures:
            await self._dead_letter(sends, DeadLetter.of(raw, failures, reports_in(outcomes), __version__), published)
            self.ledger.count(NORMALIZER_DEAD_LETTERS, raw.route, raw.received_at_us, tenant=raw.tenant)

    async def _dead_letter(
        self, sends: BatchedSends, letter: DeadLetter, published: Counter[tuple[Any, str, str]]
    ) -> None:
        raw = letter.raw
        for reason, n in letter.failure_counts.items():
            published[(metrics.NORMALIZER_DEAD_LETTERS, raw.route, reason)] += n
        log.info(
            "dead-lettered",
            route=raw.route,
            ingest_id=raw.ingest_id,
            reason=letter.failure_type,
            detail=letter.failure_message,
            report_index=letter.report_index,
            failed_reports=letter.failed_reports,
            reports=letter.report_count,
        )
        await sends.add(self.settings.topic_dlq, raw.body, key=raw.ingest_id.encode(), headers=letter.headers())
