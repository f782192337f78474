"""The billing consumer: a member of a consumer group that hands each batch, sorted by the dedupe rule, to the
job's callback and commits its offsets after the callback returned; it notices a broker that started afresh."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ringback.consumer import kafka
from ringback.consumer.decoding import EventDecoder, UndecodableEvent
from ringback.consumer.dedupe import DedupeWindow, billing_values
from ringback.consumer.delivery import DEFAULT_TOPIC, Batch, Delivered, Process, Summary, delivered
from ringback.consumer.durable_ids import ID_STORE_SUFFIX, DurableIds
from ringback.consumer.kafka import Consumer, Record, TopicPartition
from ringback.consumer.times import MICROSECOND, MS_PER_S, US_PER_MS, micros

DEFAULT_MAX_BATCH = 1000
#: Where a group without committed offsets starts: the oldest message the topic keeps, or what comes next.
START_POLICIES = ("earliest", "latest")

log = logging.getLogger(__package__)


class NormalizedConsumer:
    """A member of consumer group ``group`` on the normalized topic; see ``ringback.consumer``."""

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
                self.window.max_age_us * MICROSECOND,
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
        consumer = kafka.group_member(self.bootstrap, self.group, self.start_at, self.kafka_options)
        consumer.subscribe([self.topic], listener=kafka.RevokedListener(self._forget))
        admin = kafka.admin_client(self.bootstrap, self.kafka_options)
        try:
            await admin.start()
            await consumer.start()
            first = await kafka.cluster_id(admin, stop)
            if first is not None:
                self._notice(first)
            while stop is None or not stop.is_set():
                records = await self._fetch(consumer)
                now = await kafka.cluster_id(admin, stop)
                if now is None:
                    break  # stopped while the broker did not answer: nothing of this fetch was used
                batch = self._sort(records)
                if batch.next_offsets:
                    await call(process, batch)
                    if self.ids is not None:
                        self.ids.keep()
                    if now == batch.incarnation:
                        await kafka.commit(consumer, batch.next_offsets)
                        self._keep_incarnation(now)
                if now != self.incarnation:
                    await self._new_incarnation(consumer, now)
                    continue
                if until_caught_up and await kafka.caught_up(consumer):
                    break
        finally:
            await kafka.stop(consumer)
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

    async def _new_incarnation(self, consumer: Consumer, incarnation: str) -> None:
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

    def _sort(self, records: Iterable[Record]) -> Batch:
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

    def _decode(self, record: Record) -> Delivered:
        try:
            return delivered(record, self.decoder.decode(record.value or b""))
        except UndecodableEvent as exc:
            raise UndecodableEvent(f"{record.topic}[{record.partition}] offset {record.offset}: {exc}") from exc

    def _forget(self, revoked: list[TopicPartition]) -> None:
        """A partition taken away is sought back again if it comes back (its new committed offset)."""
        for tp in revoked:
            self._planned.discard(tp)
            self._remember_below.pop(tp, None)

    async def _fetch(self, consumer: Consumer) -> list[Record]:
        """The next records. A partition newly assigned is first sought back over the window before
        its committed offset; whatever was fetched for it before that is dropped, and read again."""
        fetched = await consumer.getmany(timeout_ms=kafka.POLL_TIMEOUT_MS, max_records=self.max_batch)
        fresh = [tp for tp in consumer.assignment() if tp not in self._planned]
        for tp in fresh:
            part = fetched.get(tp)
            await self._seek_back(consumer, tp, part[0].offset if part else None)
            self._planned.add(tp)
        return [record for tp, part in fetched.items() if tp not in fresh for record in part]

    async def _seek_back(self, consumer: Consumer, tp: TopicPartition, first_fetched: int | None) -> None:
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
            since_ms = int(time.time() * MS_PER_S) - self.window.max_age_us // US_PER_MS  # published since
            found = (await consumer.offsets_for_times({tp: since_ms})).get(tp)
            start = max(beginning, committed - self.window.max_ids, found.offset if found is not None else committed)
        consumer.seek(tp, min(start, resume_at))
        if start < resume_at:
            self._remember_below[tp] = resume_at


async def call(process: Process, batch: Batch) -> None:
    if inspect.iscoroutinefunction(process):
        await process(batch)
        return
    result = await asyncio.to_thread(process, batch)
    if inspect.isawaitable(result):
        await result


def consume(bootstrap: str, group: str, process: Process, *, until_caught_up: bool = False, **options: Any) -> Summary:
    """``NormalizedConsumer(bootstrap, group, **options).run(process)`` for a synchronous job."""
    return asyncio.run(NormalizedConsumer(bootstrap, group, **options).run(process, until_caught_up=until_caught_up))
