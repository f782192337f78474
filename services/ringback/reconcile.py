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

What the edge acknowledged must never be undercounted — an undercount hides a gap of its size. With the
embedded broker the edge counts it from its journal and says running totals (``edge.accepted_total``,
the largest per journal counts), so neither a broker that loses its topics nor an edge that dies loses
a count. The other stages' counts can be lost with the broker (deltas the sink had not read yet): so a
count of raw messages below what was accepted is a gap only when the identities show one too — when
every acknowledged request has something stored, it was normalized.
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
# Deltas add up; running totals (one stage) count by their largest per instance.
LEDGER_QUERY = """
SELECT hour, route, tenant,
       sumIf(n, stage IN ('{accepted}', '{accepted_total}')) AS accepted, sumIf(n, stage = '{raw}') AS raw,
       sumIf(n, stage = '{replayed}') AS replayed,
       sumIf(n, stage = '{reports}') AS reports, sumIf(n, stage = '{events}') AS normalized,
       sumIf(n, stage = '{dead}') AS dead_lettered, sumIf(n, stage = '{sink_events}') AS stored_events,
       sumIf(n, stage = '{sink_dead}') AS stored_dead
FROM (
    SELECT toUnixTimestamp(l.hour) AS hour, l.route AS route, l.tenant AS tenant, l.stage AS stage,
           if(l.stage = '{accepted_total}', max(l.count), sum(l.count)) AS n
    FROM ringback.ledger AS l FINAL
    WHERE l.hour >= toStartOfHour(now() - INTERVAL {hours} HOUR)
    GROUP BY hour, route, tenant, stage, l.instance
)
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
        accepted_total=stage.EDGE_ACCEPTED_TOTAL,
        raw=stage.NORMALIZER_RAW,
        replayed=stage.REPLAY_RAW,
        reports=stage.NORMALIZER_REPORTS,
        events=stage.NORMALIZER_EVENTS,
        dead=stage.NORMALIZER_DEAD_LETTERS,
        sink_events=stage.SINK_EVENTS,
        sink_dead=stage.SINK_DEAD_LETTERS,
        hours=int(hours),
    )


def ledger_lines(
    settings: Settings, hours: int, now: float | None = None, *, settled: bool = False
) -> list[LedgerLine]:
    """The lines of the last ``hours`` hours; the current hour counts as in flight unless ``settled``
    (the traffic stopped and the pipeline drained: every hour is judged)."""
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
        gaps = [
            f"{by_stage[up] - by_stage[down]} {why}"
            for up, down, why in CHECKS
            if by_stage[down] < by_stage[up] and not _explained(up, down, by_stage)
        ]
        lines.append(LedgerLine(hour, route, tenant, counts, gaps, open_hour=not settled and hour >= current_hour))
    return lines


def _explained(up: str, down: str, by_stage: dict[str, int]) -> bool:
    """A shortfall of raw-message counts where every acknowledged request has something stored: counts
    lost with the broker, not requests."""
    return (up, down) == (stage.EDGE_ACCEPTED, stage.NORMALIZER_RAW) and by_stage[STORED_REQUESTS] >= by_stage[up]


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
