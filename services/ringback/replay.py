"""`ringback replay`: requests sent through the current adapters again, once the cause of their failure
is fixed — dead letters chosen by reason, route, tenant, time of receipt or ingest id, or every request
of a time range still on the raw topic.

Each request is published to the raw topic as the edge published it — the same route, ingest id,
receive time, remote address, tenant and body — with one header more, ``replayed_at_us``. The normalizer
treats it like any request, so:

- **idempotent**: the same reports get the same event ids, so ``ringback.events`` holds each event
  once however often a request is replayed;
- a request that fails again is dead-lettered again, and its new dead letter replaces the old one
  (same route, ingest id and report index) with the new reason and ``replayed_at`` set;
- **counted as a replay**: the ledger counts it under ``replay.raw_messages`` (reconcile's
  ``replayed`` column), not as a request the edge accepted; its events and dead letters count in the
  stages after it as usual; ``ringback_normalizer_replayed_total`` counts them too;
- the dead-letter guard does not judge replays: replaying old garbage does not pause live traffic.

Dead letters are read from ``ringback.dead_letters`` (through ``ringback sql``'s path, read-only), a
page at a time; the raw topic from the broker, without a consumer group.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from ringback.config import Settings
from ringback.consumer import read_records
from ringback.routes import BY_NAME
from ringback.runtime import kafka
from ringback.runtime.query_guard import string_literal
from ringback.runtime.raw import RawCallback
from ringback.runtime.stream.backend import Producer
from ringback.sql import run_sql

#: Dead letters read per query (each carries its body: bounded by the body size limit).
PAGE_ROWS = 500
#: Requests published before waiting for the broker's acknowledgements.
IN_FLIGHT = 500
REASON = re.compile(r"[a-z][a-z0-9_]{0,63}")
TENANT = re.compile(r"[a-z0-9_-]{1,64}")
INGEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
NO_TENANT = "-"
_US_PER_S = 1_000_000


class SelectionError(ValueError):
    """A filter that cannot be used (an unknown route, a malformed reason or tenant)."""


@dataclass(frozen=True)
class Selection:
    """Which requests: every filter given must match (a list matches any of its values)."""

    reasons: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()  # NO_TENANT for the tenant-less routes
    ingest_ids: tuple[str, ...] = ()
    since: datetime | None = None  # received at or after
    until: datetime | None = None  # received before

    def __post_init__(self) -> None:
        for route in self.routes:
            if route not in BY_NAME:
                raise SelectionError(f"unknown route {route!r}; routes: {', '.join(sorted(BY_NAME))}")
        _all_match(REASON, self.reasons, "reason")
        _all_match(TENANT, [t for t in self.tenants if t != NO_TENANT], "tenant")
        _all_match(INGEST_ID, self.ingest_ids, "ingest id")
        if self.since and self.until and self.until <= self.since:
            raise SelectionError("--until must be later than --since")

    def matches(self, raw: RawCallback) -> bool:
        """For requests read from the raw topic (reasons do not apply there)."""
        at_us = raw.received_at_us
        return (
            (not self.routes or raw.route in self.routes)
            and (not self.tenants or (raw.tenant or NO_TENANT) in self.tenants)
            and (not self.ingest_ids or raw.ingest_id in self.ingest_ids)
            and (self.since is None or at_us >= _micros(self.since))
            and (self.until is None or at_us < _micros(self.until))
        )


def _all_match(pattern: re.Pattern[str], values: tuple[str, ...] | list[str], what: str) -> None:
    for value in values:
        if not pattern.fullmatch(value):
            raise SelectionError(f"{what} {value!r} is not one")


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * _US_PER_S)


@dataclass
class ReplaySummary:
    source: str  # "dead letters" or "raw topic"
    dry_run: bool
    requests: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)  # dead letters: the reason they failed with
    first_received_us: int = 0
    last_received_us: int = 0

    def add(self, raw: RawCallback, reason: str = "") -> None:
        self.requests += 1
        self.by_route[raw.route] += 1
        if reason:
            self.by_reason[reason] += 1
        at = raw.received_at_us
        self.first_received_us = min(self.first_received_us or at, at)
        self.last_received_us = max(self.last_received_us, at)

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "requests": self.requests,
            "by_route": dict(self.by_route),
            "by_reason": dict(self.by_reason),
            "first_received_at": _iso(self.first_received_us),
            "last_received_at": _iso(self.last_received_us),
        }

    def render(self, topic: str) -> str:
        verb = "would replay" if self.dry_run else "replayed"
        if not self.requests:
            return f"nothing to replay: no {self.source} match"
        lines = [
            (
                f"{verb} {self.requests} requests from the {self.source} to {topic}, received "
                f"{_iso(self.first_received_us)} .. {_iso(self.last_received_us)}"
            )
        ]
        lines.append("  by route: " + ", ".join(f"{route} {n}" for route, n in self.by_route.most_common()))
        if self.by_reason:
            lines.append(
                "  by the reason they failed with: "
                + ", ".join(f"{reason} {n}" for reason, n in self.by_reason.most_common())
            )
        if not self.dry_run:
            lines.append(
                "their events reach ringback.events as the normalizer takes them (the same ids: nothing is "
                "counted twice);"
            )
            lines.append(
                "those that fail again replace their dead letters; `ringback reconcile` counts them as replayed"
            )
        return "\n".join(lines)


def _iso(at_us: int) -> str | None:
    return datetime.fromtimestamp(at_us / _US_PER_S, tz=UTC).isoformat() if at_us else None


# --- dead letters ---


def dead_letter_query(selection: Selection, after: tuple[int, str] | None, limit: int = PAGE_ROWS) -> str:
    """One page of the chosen dead letters, one row per request (its latest dead letter), in order of
    receipt, after ``after`` (receive time in µs, ingest id) of the previous page."""
    where = ["1"]
    if selection.reasons:
        where.append(f"failure_type IN ({_literals(selection.reasons)})")
    if selection.routes:
        where.append(f"route IN ({_literals(selection.routes)})")
    if selection.tenants:
        where.append(f"tenant IN ({_literals(['' if t == NO_TENANT else t for t in selection.tenants])})")
    if selection.ingest_ids:
        where.append(f"ingest_id IN ({_literals(selection.ingest_ids)})")
    if selection.since is not None:
        where.append(f"received_at >= fromUnixTimestamp64Micro(toInt64({_micros(selection.since)}), 'UTC')")
    if selection.until is not None:
        where.append(f"received_at < fromUnixTimestamp64Micro(toInt64({_micros(selection.until)}), 'UTC')")
    if after is not None:
        where.append(
            f"(received_at, ingest_id) > (fromUnixTimestamp64Micro(toInt64({after[0]}), 'UTC'), "
            f"{string_literal(after[1])})"
        )
    return (
        "SELECT route, ingest_id, toUnixTimestamp64Micro(received_at) AS received_at_us, remote_addr, content_type, "
        "tenant, tenant_app_id, "
        "failure_type, base64Encode(body) AS body_base64 "
        f"FROM ringback.dead_letters FINAL WHERE {' AND '.join(where)} "
        f"ORDER BY received_at, ingest_id, dead_lettered_at DESC LIMIT 1 BY ingest_id LIMIT {int(limit)}"
    )


def _literals(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(string_literal(v) for v in values)


def dead_letter_page(
    settings: Settings, selection: Selection, after: tuple[int, str] | None
) -> list[tuple[RawCallback, str]]:
    """One page of the chosen dead letters as the requests they were, with the reason each failed with."""
    rows = [
        orjson.loads(line)
        for line in run_sql(settings, dead_letter_query(selection, after), "JSONEachRow").splitlines()
        if line.strip()
    ]
    return [
        (
            RawCallback(
                route=str(row["route"]),
                ingest_id=str(row["ingest_id"]),
                received_at_us=int(row["received_at_us"]),
                remote_addr=str(row["remote_addr"]),
                content_type=str(row["content_type"]),
                body=base64.b64decode(row["body_base64"]),
                tenant=str(row["tenant"]),
                tenant_app_id=str(row["tenant_app_id"]),
            ),
            str(row["failure_type"]),
        )
        for row in rows
    ]


async def dead_letters(settings: Settings, selection: Selection) -> AsyncIterator[tuple[RawCallback, str]]:
    after: tuple[int, str] | None = None
    while True:
        page = await asyncio.to_thread(dead_letter_page, settings, selection, after)
        for raw, reason in page:
            yield raw, reason
        if len(page) < PAGE_ROWS:
            return
        last = page[-1][0]
        after = (last.received_at_us, last.ingest_id)


# --- the raw topic ---


async def raw_requests(settings: Settings, bootstrap: str, selection: Selection) -> AsyncIterator[RawCallback]:
    """The edge's requests on the raw topic received in the selection's range (earlier replays left out)."""
    if selection.since is None:
        raise SelectionError("a raw-topic replay needs --since")
    records = read_records(bootstrap, selection.since, topic=settings.topic_raw, follow=False)
    try:
        async for record in records:
            raw = RawCallback.from_message(record.topic, record.partition, record.offset, record.value, record.headers)
            if not raw.replayed_at_us and selection.matches(raw):
                yield raw
    finally:
        await records.aclose()


# --- publishing ---


class Publisher:
    """Publishes replayed requests to the raw topic, acknowledged by the broker (acks=all) in groups."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.topic = settings.topic_raw
        self.producer: Producer = kafka.producer(settings.replace(kafka_bootstrap=bootstrap))
        self.pending: list[Awaitable[object]] = []  # the broker's acknowledgements to come
        self.replayed_at_us = time.time_ns() // 1000

    async def __aenter__(self) -> Publisher:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.flush()
        finally:
            await self.producer.stop()

    async def send(self, raw: RawCallback) -> None:
        again = RawCallback(
            route=raw.route,
            ingest_id=raw.ingest_id,
            received_at_us=raw.received_at_us,
            remote_addr=raw.remote_addr,
            content_type=raw.content_type,
            body=raw.body,
            tenant=raw.tenant,
            tenant_app_id=raw.tenant_app_id,
            replayed_at_us=self.replayed_at_us,
        )
        self.pending.append(
            await self.producer.send(
                self.topic, value=again.body, key=again.ingest_id.encode(), headers=again.headers()
            )
        )
        if len(self.pending) >= IN_FLIGHT:
            await self.flush()

    async def flush(self) -> None:
        pending, self.pending = self.pending, []
        for delivery in pending:
            await delivery


async def replay_dead_letters(settings: Settings, bootstrap: str, selection: Selection, dry_run: bool) -> ReplaySummary:
    summary = ReplaySummary("dead letters", dry_run)
    if dry_run:
        async for raw, reason in dead_letters(settings, selection):
            summary.add(raw, reason)
        return summary
    async with Publisher(settings, bootstrap) as publisher:
        async for raw, reason in dead_letters(settings, selection):
            await publisher.send(raw)
            summary.add(raw, reason)
    return summary


async def replay_raw(settings: Settings, bootstrap: str, selection: Selection, dry_run: bool) -> ReplaySummary:
    summary = ReplaySummary("raw topic", dry_run)
    requests = raw_requests(settings, bootstrap, selection)
    if dry_run:
        async for raw in requests:
            summary.add(raw)
        return summary
    async with Publisher(settings, bootstrap) as publisher:
        async for raw in requests:
            await publisher.send(raw)
            summary.add(raw)
    return summary
