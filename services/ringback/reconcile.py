"""`ringback reconcile`: the ledger per tenant, route and hour, and every place where a stage has fewer than
the stage before it (a gap: something acknowledged did not arrive downstream).

Counts can only be higher downstream for known, harmless reasons: replays after a crash (at-least-once),
vendor resends, which the event ids collapse (``duplicates``: copies stored beyond one per event), and
requests sent through again by ``ringback replay`` (``replayed``, counted instead of ``raw``). They can be
lower for one: loss — or, within the current hour, work still in flight. Closed hours with a gap make the
command exit 1.

Because replays inflate counts, counts alone can hide a loss (a replay elsewhere in the hour makes up
for a request that vanished). So the first check compares identities: the requests the edge
acknowledged against the distinct ingest ids that have an event or a dead letter stored
(``ringback.ingests``, filled by ClickHouse from every insert). A replay adds no ingest id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from ringback.config import Settings
from ringback.runtime import ledger as stage
from ringback.sql import run_sql

#: (upstream, downstream) pairs that must not shrink.
STORED_REQUESTS = "stored_requests"
CHECKS = (
    (stage.EDGE_ACCEPTED, STORED_REQUESTS, "acknowledged requests with nothing stored"),
    (stage.EDGE_ACCEPTED, stage.NORMALIZER_RAW, "accepted by the edge but never normalized"),
    (stage.NORMALIZER_EVENTS, stage.SINK_EVENTS, "normalized but never stored"),
    (stage.NORMALIZER_DEAD_LETTERS, stage.SINK_DEAD_LETTERS, "dead-lettered but never stored"),
)
COLUMNS = (
    "accepted",
    "stored_requests",
    "raw",
    "replayed",
    "reports",
    "normalized",
    "dead_lettered",
    "stored_events",
    "stored_dead",
    "unique_events",
    "duplicates",
)
#: Columns computed here rather than read from the ledger.
DERIVED = ("unique_events", STORED_REQUESTS, "duplicates")
LEDGER_QUERY = """
SELECT toUnixTimestamp(l.hour) AS hour, l.route AS route, l.tenant AS tenant,
       sumIf(l.count, l.stage = '{accepted}') AS accepted, sumIf(l.count, l.stage = '{raw}') AS raw,
       sumIf(l.count, l.stage = '{replayed}') AS replayed,
       sumIf(l.count, l.stage = '{reports}') AS reports, sumIf(l.count, l.stage = '{events}') AS normalized,
       sumIf(l.count, l.stage = '{dead}') AS dead_lettered, sumIf(l.count, l.stage = '{sink_events}') AS stored_events,
       sumIf(l.count, l.stage = '{sink_dead}') AS stored_dead
FROM ringback.ledger AS l FINAL
WHERE l.hour >= toStartOfHour(now() - INTERVAL {hours} HOUR)
GROUP BY hour, route, tenant ORDER BY hour, route, tenant
FORMAT JSONEachRow
"""
STORED_REQUESTS_QUERY = """
SELECT toUnixTimestamp(hour) AS hour, route, tenant, uniqExact(ingest_id) AS stored_requests
FROM ringback.ingests WHERE hour >= toStartOfHour(now() - INTERVAL {hours} HOUR)
GROUP BY hour, route, tenant FORMAT JSONEachRow
"""
UNIQUE_QUERY = """
SELECT toUnixTimestamp(toStartOfHour(received_at)) AS hour, route, tenant, count() AS unique_events
FROM ringback.events WHERE received_at >= toStartOfHour(now() - INTERVAL {hours} HOUR)
GROUP BY hour, route, tenant FORMAT JSONEachRow
"""


@dataclass
class LedgerLine:
    hour: int
    route: str
    tenant: str  # "" for the tenant-less routes
    counts: dict[str, int]
    gaps: list[str]
    open_hour: bool


def ledger_query(hours: int) -> str:
    """The ledger's counts by stage for the last ``hours`` hours."""
    return LEDGER_QUERY.format(
        accepted=stage.EDGE_ACCEPTED,
        raw=stage.NORMALIZER_RAW,
        replayed=stage.REPLAY_RAW,
        reports=stage.NORMALIZER_REPORTS,
        events=stage.NORMALIZER_EVENTS,
        dead=stage.NORMALIZER_DEAD_LETTERS,
        sink_events=stage.SINK_EVENTS,
        sink_dead=stage.SINK_DEAD_LETTERS,
        hours=int(hours),
    )


def ledger_lines(settings: Settings, hours: int, now: float | None = None) -> list[LedgerLine]:
    rows = _json_rows(run_sql(settings, ledger_query(hours), "JSONEachRow"))
    unique = _by_line(settings, UNIQUE_QUERY, hours, "unique_events")
    stored_requests = _by_line(settings, STORED_REQUESTS_QUERY, hours, STORED_REQUESTS)
    current_hour = int(now if now is not None else time.time()) // 3600 * 3600
    lines = []
    for row in rows:
        hour, route, tenant = int(str(row["hour"])), str(row["route"]), str(row.get("tenant") or "")
        counts = {name: int(str(row.get(name, 0))) for name in COLUMNS if name not in DERIVED}
        counts["unique_events"] = unique.get((hour, route, tenant), 0)
        counts[STORED_REQUESTS] = stored_requests.get((hour, route, tenant), 0)
        # Copies stored beyond one per event: vendor resends, replays after a crash, `ringback replay`.
        counts["duplicates"] = max(0, counts["stored_events"] - counts["unique_events"])
        by_stage = {
            STORED_REQUESTS: counts[STORED_REQUESTS],
            stage.EDGE_ACCEPTED: counts["accepted"],
            stage.NORMALIZER_RAW: counts["raw"],
            stage.NORMALIZER_EVENTS: counts["normalized"],
            stage.SINK_EVENTS: counts["stored_events"],
            stage.NORMALIZER_DEAD_LETTERS: counts["dead_lettered"],
            stage.SINK_DEAD_LETTERS: counts["stored_dead"],
        }
        gaps = [f"{by_stage[up] - by_stage[down]} {why}" for up, down, why in CHECKS if by_stage[down] < by_stage[up]]
        lines.append(LedgerLine(hour, route, tenant, counts, gaps, open_hour=hour >= current_hour))
    return lines


def _by_line(settings: Settings, query: str, hours: int, column: str) -> dict[tuple[int, str, str], int]:
    """``column`` by (hour, route, tenant), the key of a ledger line."""
    rows = _json_rows(run_sql(settings, query.format(hours=int(hours)), "JSONEachRow"))
    return {(int(str(r["hour"])), str(r["route"]), str(r.get("tenant") or "")): int(str(r[column])) for r in rows}


def _json_rows(payload: bytes) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in payload.splitlines() if line.strip()]


def render(lines: list[LedgerLine]) -> str:
    header = ("hour (UTC)", "route", "tenant", *COLUMNS, "check")
    table: list[tuple[str, ...]] = [header]
    for line in lines:
        hour = datetime.fromtimestamp(line.hour, tz=UTC).strftime("%Y-%m-%d %H:00")
        if not line.gaps:
            verdict = "ok"
        elif line.open_hour:
            verdict = "in flight: " + "; ".join(line.gaps)
        else:
            verdict = "GAP: " + "; ".join(line.gaps)
        table.append((hour, line.route, line.tenant or "-", *(str(line.counts[c]) for c in COLUMNS), verdict))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in table)


def as_json(lines: list[LedgerLine]) -> list[dict[str, object]]:
    """The lines for scripts: hour (ISO, UTC), route, every count by name, gaps, and the verdict."""
    return [
        {
            "hour": datetime.fromtimestamp(line.hour, tz=UTC).isoformat(),
            "route": line.route,
            "tenant": line.tenant,
            **line.counts,
            "gaps": line.gaps,
            "check": "ok" if not line.gaps else ("in_flight" if line.open_hour else "gap"),
        }
        for line in lines
    ]


def has_closed_gap(lines: list[LedgerLine]) -> bool:
    return any(line.gaps and not line.open_hour for line in lines)
