"""Finding billing conflicts: events whose copies arrived with different billing values.

``ringback.event_variants`` keeps one row per distinct set of billing values of an event (filled by a
materialized view on every insert). After storing a batch — at most every ``conflict_check_interval_s``
— the sink looks among the variants inserted since its last look (with a margin for inserts still
landing) for events that have more than one. A look that is not due yet when the last batch is stored
is taken once it is due, traffic or not, so the last resends before a quiet spell are found too. A
conflict is recorded in ``ringback.event_conflicts``
with every version when the table does not hold it yet, or holds fewer versions of it; the events not
recorded before are counted (``ringback_sink_event_conflicts_total``) and logged. What is recorded is
the memory: a sink that starts again looks at every variant once more but neither records, counts
nor logs a conflict a second time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from ringback import logs, metrics

CONFLICTS_TABLE = "ringback.event_conflicts"
#: Variants inserted this long before the previous look are looked at again (inserts still landing).
LOOK_BACK_MARGIN = timedelta(minutes=1)
FIND = """
SELECT event_id, any(tenant) AS tenant, any(event_type) AS event_type, any(source) AS source,
       argMin(tuple(app_id), received_at).1 AS app_id, any(sid) AS sid, any(call_id) AS call_id,
       any(request_id) AS request_id, count() AS versions, min(received_at) AS first_received_at,
       arraySort(x -> x.1, groupArray((received_at, ingest_id, toString(status), charge, duration_s, billable_minutes)))
           AS history
FROM ringback.event_variants FINAL
WHERE event_id IN (SELECT event_id FROM ringback.event_variants WHERE inserted_at >= {since:DateTime64(3)})
GROUP BY event_id
HAVING uniqExact(billing_hash) > 1
"""
#: On a cluster, FIND's subquery reads each shard's own variants instead of the distributed table, which
#: ClickHouse refuses inside a distributed query by default. That is exact: every variant of an event is
#: on the shard of its event id (cluster DDL). A single server ignores the setting.
FIND_SETTINGS = {"distributed_product_mode": "local"}
RECORDED = """
SELECT event_id, max(versions) FROM ringback.event_conflicts WHERE event_id IN {ids:Array(String)} GROUP BY event_id
"""
COLUMNS = [
    "event_id",
    "tenant",
    "event_type",
    "source",
    "app_id",
    "sid",
    "call_id",
    "request_id",
    "versions",
    "first_received_at",
    "received_at",
    "ingest_id",
    "status",
    "charge",
    "duration_s",
    "billable_minutes",
    "detected_at",
]

#: Where a FIND row holds its number of versions.
VERSIONS = COLUMNS.index("versions")

log = logs.get(__name__)


class ConflictWatcher:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last_look = datetime.fromtimestamp(0, tz=UTC)
        self._next_due = 0.0
        self._unlooked = False  # events stored since the last look

    def stored(self) -> None:
        """Events were stored: a look is owed."""
        self._unlooked = True

    def due(self) -> bool:
        """A look is owed and the interval since the last one has passed."""
        return self._unlooked and time.monotonic() >= self._next_due

    def look(self, client: Client) -> int:
        """Record the conflicts among variants inserted since the last look that are not recorded yet (or
        have gained a version); returns how many events conflict for the first time. Runs on the sink's
        ClickHouse thread."""
        started = datetime.now(UTC)
        self._unlooked = False
        since = self._last_look - LOOK_BACK_MARGIN
        found = client.query(FIND, parameters={"since": since.replace(tzinfo=None)}, settings=FIND_SETTINGS).result_rows
        self._last_look = started
        self._next_due = time.monotonic() + self.interval_s
        if not found:
            return 0
        recorded = {
            str(event_id): int(versions)
            for event_id, versions in client.query(
                RECORDED, parameters={"ids": [row[0] for row in found]}, settings=FIND_SETTINGS
            ).result_rows
        }
        changed = [row for row in found if recorded.get(row[0], 0) < row[VERSIONS]]
        if not changed:
            return 0
        client.insert(CONFLICTS_TABLE, [self._row(row, started) for row in changed], column_names=COLUMNS)
        new = [row[0] for row in changed if row[0] not in recorded]
        if new:
            metrics.SINK_EVENT_CONFLICTS.inc(len(new))
            log.warning(
                (
                    "billing conflicts: copies of an event arrived with different billing values; the first arrival "
                    "is kept"
                ),
                events=len(new),
                examples=new[:5],
                table=CONFLICTS_TABLE,
            )
        return len(new)

    @staticmethod
    def _row(row: Sequence[Any], detected_at: datetime) -> list[Any]:
        *named, versions, first_received_at, history = row
        received_at, ingest_id, status, charge, duration_s, billable_minutes = (
            list(column) for column in zip(*history, strict=True)
        )
        return [
            *named,
            versions,
            first_received_at,
            received_at,
            ingest_id,
            status,
            charge,
            duration_s,
            billable_minutes,
            detected_at,
        ]
