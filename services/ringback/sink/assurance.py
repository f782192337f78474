"""The revenue-assurance metrics: the sink counts the rows of ``ringback.missing_cdrs``,
``ringback.stuck_messages`` and ``ringback.charge_differences`` every ``assurance_check_interval_s``, on
the analysts' read-only reader (never in front of an insert)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from clickhouse_connect.driver.client import Client
from prometheus_client import Gauge

from ringback import logs, metrics

#: Each assurance view and the gauge that shows how many rows it holds.
VIEWS: tuple[tuple[str, Gauge], ...] = (
    ("ringback.missing_cdrs", metrics.SINK_MISSING_CDRS),
    ("ringback.stuck_messages", metrics.SINK_STUCK_MESSAGES),
    ("ringback.charge_differences", metrics.SINK_CHARGE_DIFFERENCES),
)

log = logs.get(__name__)


def count_rows(reader: Client) -> dict[str, int]:
    return {view: int(reader.query(f"SELECT count() FROM {view}").result_rows[0][0]) for view, _ in VIEWS}


class AssuranceCheck:
    def __init__(self, reader: Client, interval_s: float, on_query_thread: Callable[..., Awaitable[Any]]) -> None:
        self.reader = reader
        self.interval_s = interval_s
        self.on_query_thread = on_query_thread
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> dict[str, int]:
        counts: dict[str, int] = await self.on_query_thread(count_rows, self.reader)
        for view, gauge in VIEWS:
            gauge.set(counts[view])
        metrics.SINK_ASSURANCE_CHECKED.set(time.time())
        if any(counts.values()):
            log.warning("revenue assurance found something (ringback audit lists it)", **counts)
        return counts

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:  # a query failing now (store busy, limits) must not end the checks
                log.error("revenue assurance views not counted", error=str(exc)[:500])
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
