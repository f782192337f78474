"""The sink role: the stream driver on the normalized, dead-letter and ledger topics, running the sink
step, plus the read-only reader analysts' queries go through (`ringback sql` while the sink runs)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar, TypeVarTuple

from clickhouse_connect.driver.client import Client

from ringback import logs
from ringback.config import Settings
from ringback.runtime import clickhouse, kafka
from ringback.runtime.avro import EventCodec
from ringback.runtime.kafka import KafkaConsumer
from ringback.runtime.stream.backend import Producer
from ringback.runtime.stream.driver import StreamDriver
from ringback.runtime.stream.health import Health
from ringback.sink import analyst_views, data_dictionary, rate_card, tenant_scope
from ringback.sink.analysts import Analyst
from ringback.sink.assurance import AssuranceCheck
from ringback.sink.step import SinkStep
from ringback.sink.store import Store

ROLE = "sink"
T = TypeVar("T")
Ts = TypeVarTuple("Ts")

log = logs.get(__name__)


class Sink:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.codec = EventCodec.from_dir(settings.schemas_dir)
        self.health = Health(ROLE, settings.retry_alarm_after_s)
        # chdb is an in-process engine: every ClickHouse call of ingestion goes through this one thread.
        self.db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self.client: Client | None = None
        # A client of its own for analysts' queries, read-only and bounded for its whole session, on a
        # thread of its own: a long analyst query never waits in front of an insert.
        self.reader: Client | None = None
        self.query_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-query")
        topics = [settings.topic_normalized, settings.topic_dlq, settings.topic_ledger]
        self.consumer = KafkaConsumer(settings, topics, settings.sink_group)
        self.producer: Producer | None = None
        self.step_: SinkStep | None = None
        self.driver: StreamDriver | None = None
        self.healthy = False
        self.rate_card: rate_card.RateCardSource | None = None
        self.assurance: AssuranceCheck | None = None

    async def on_db_thread(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        # With the caller's context: what the function logs carries the role bound to it.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self.db_thread, lambda: context.run(fn, *args))

    async def on_query_thread(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self.query_thread, lambda: context.run(fn, *args))

    async def start(self) -> None:
        dsn = self.settings.effective_clickhouse_dsn
        self.client = await self.on_db_thread(clickhouse.connect, dsn)
        applied = await self.on_db_thread(
            clickhouse.apply_ddl,
            self.client,
            self.settings.schemas_dir,
            self.settings.clickhouse_cluster,
            self.settings.billing_timezone,
        )
        self.reader = await self.on_query_thread(
            clickhouse.connect_reader, dsn, clickhouse.QueryLimits.of(self.settings)
        )
        log.info("clickhouse ready", dsn=clickhouse.redacted(dsn), ddl_statements=applied)
        if not self.settings.clickhouse_cluster:
            await self.on_db_thread(self._apply_data_dictionary)
        if self.settings.analyst_views_dir:
            await self.on_db_thread(self._apply_analyst_views, Path(self.settings.analyst_views_dir))
        await self._start_rate_card(self.client)
        await kafka.ensure_topics_if_allowed(self.settings)
        await self.consumer.start()
        if self.settings.journal_enabled:
            self.producer = kafka.producer(self.settings)
            await self.producer.start()
        store = Store(self.client, self.db_thread, self.codec, self.health)
        self.step_ = SinkStep(self.settings, store, self.codec, self.producer)
        self.driver = StreamDriver(ROLE, self.consumer, self.step_, self.health, self.settings.drain_timeout_s)
        self.healthy = True
        log.info("sink consuming", group=self.settings.sink_group)

    def _apply_data_dictionary(self) -> None:
        """Comments on every table and column (:mod:`ringback.sink.data_dictionary`): documentation, so a
        failure is logged and ingestion goes on."""
        client = self.client
        assert client is not None

        def run(sql: str) -> list[tuple[object, ...]]:
            if sql.startswith("SELECT"):
                return [tuple(row) for row in client.query(sql).result_rows]
            client.command(sql)
            return []

        try:
            applied = data_dictionary.apply(run, data_dictionary.load(self.settings.schemas_dir))
        except Exception as exc:
            log.error("data dictionary not applied", error=str(exc))
            return
        if applied.missing:
            log.warning("tables and columns without a comment", missing=applied.missing)
        log.info("data dictionary applied", comments=applied.comments)

    async def _start_rate_card(self, client: Client) -> None:
        """The assurance settings and the rate card into the store; a rates file that does not validate
        stops the start."""
        await self.on_db_thread(rate_card.store_settings, client, self.settings)
        self.rate_card = rate_card.RateCardSource(self.settings.rates_file, client, self.on_db_thread)
        await self.rate_card.load_at_start()
        self.rate_card.start()
        assert self.reader is not None
        self.assurance = AssuranceCheck(self.reader, self.settings.assurance_check_interval_s, self.on_query_thread)
        self.assurance.start()

    def _apply_analyst_views(self, folder: Path) -> None:
        """On the writer's thread; the guard's checks run on the reader's own thread."""
        if not folder.is_dir():
            log.error("analyst views folder not found: views left as they are", folder=str(folder))
            return
        reader = self.reader

        def engine(sql: str, fmt: str | None) -> bytes:
            assert reader is not None
            return self.query_thread.submit(lambda: reader.raw_query(sql, fmt=fmt)).result()

        assert self.client is not None  # started
        analyst_views.report(folder, analyst_views.apply(self.client, engine, folder, self.settings.clickhouse_cluster))

    async def stop(self) -> None:
        self.healthy = False
        if self.rate_card is not None:
            await self.rate_card.stop()
        if self.assurance is not None:
            await self.assurance.stop()
        if self.step_ is not None and self.step_.in_flight is not None and not self.step_.in_flight.done():
            self.step_.in_flight.cancel()  # not committed, so read again by whoever takes these partitions
            await asyncio.gather(self.step_.in_flight, return_exceptions=True)
        if self.producer is not None:
            await self.producer.stop()
        await self.consumer.stop()
        if self.reader is not None:
            await self.on_query_thread(self.reader.close)  # after the query running, if any (bounded by its time limit)
        self.query_thread.shutdown(wait=True)
        if self.client is not None:
            await self.on_db_thread(self.client.close)
        self.db_thread.shutdown(wait=True)

    async def run(self, stop: asyncio.Event) -> None:
        assert self.driver is not None
        await self.driver.run(stop)

    async def step(self) -> int:
        """One round of the driver: fetch, store what is due, commit what is stored."""
        assert self.driver is not None
        return await self.driver.step()

    async def flush(self) -> None:
        """Store everything taken so far, wait for it, and commit (tests and benchmarks)."""
        assert self.driver is not None and self.step_ is not None
        await self.step_.flush()
        await self.driver.commit()

    def ready_reasons(self) -> list[str]:
        return self.driver.not_ready_reasons() if self.driver is not None else ["starting"]

    async def query(self, sql: str, default_format: str, output_settings: dict[str, str] | None = None) -> bytes:
        """An analyst's query on the store this process owns (`ringback sql` while running): checked by
        the query guard, run on the reader's own thread, bounded by the query limits; with output
        settings, on a reader opened with them for this query."""
        assert self.reader is not None
        opener = clickhouse.reader_opener(
            self.settings.effective_clickhouse_dsn, clickhouse.QueryLimits.of(self.settings)
        )
        return await self.on_query_thread(
            clickhouse.run_read_only, self.reader, sql, default_format, output_settings, opener
        )

    async def query_as(
        self, analyst: Analyst, sql: str, default_format: str, output_settings: dict[str, str] | None = None
    ) -> bytes:
        """:meth:`query` for an analyst of the HTTP interface: one limited to some tenants sees only
        their rows (:mod:`ringback.sink.tenant_scope`)."""
        if analyst.tenants is None:
            return await self.query(sql, default_format, output_settings)
        assert self.reader is not None
        opener = clickhouse.reader_opener(
            self.settings.effective_clickhouse_dsn, clickhouse.QueryLimits.of(self.settings)
        )
        return await self.on_query_thread(
            tenant_scope.run_for_tenants,
            self.reader,
            sql,
            default_format,
            analyst.tenants,
            output_settings or {},
            opener,
        )
