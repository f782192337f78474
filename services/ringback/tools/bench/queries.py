"""`ringback bench-queries` (`make bench-queries`): the analyst cookbook's queries on a large generated
store, in the embedded engine, with their timings.

The events are generated inside ClickHouse (``INSERT … SELECT … FROM numbers()``) in the tables the
sink writes, with the traffic's shape: mostly SMS receipts (two per message), call states, CDRs,
Tencent voice statuses, recordings and key presses, over many tenants and apps, spread over some days,
and a share of them inserted twice (vendor resends and replays: another copy, received later), so
``ringback.events`` has real duplicates to collapse. After the background merges settle, each query
runs a few times; the report gives the best and the median time.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ringback.runtime import clickhouse

CHUNK_ROWS = 10_000_000
RESENT_EVERY = 20  # one event in this many arrives twice
TENANTS = 20
APPS = 200
RUNS = 5
MERGE_WAIT_S = 900.0
FIRST_DAY = datetime(2026, 10, 1, tzinfo=UTC)
SCHEMAS = Path(__file__).resolve().parents[4] / "schemas"

#: The generated events, by the event number `number` (see the module docstring for the shape).
GENERATE = """
INSERT INTO ringback.event_copies (event_id, event_type, source, route, ingest_id, report_index, received_at,
    occurred_at, app_id, sid, call_id, request_id, to_e164, status, vendor_code, duration_s, billable_minutes, charge,
    currency, normalizer_version, tenant, carrier)
SELECT
    hex(sipHash128(number)) AS event_id,
    multiIf(kind < 70, 'sms.delivery_report', kind < 80, 'call.state', kind < 88, 'call.cdr',
            kind < 93, 'voice.code_status', kind < 96, 'call.recording', kind < 98, 'call.key_press',
            kind < 99, 'voice.code_cdr', 'conference.cdr') AS event_type,
    multiIf(kind < 70, 'tencent.sms_status', kind < 80, 'callback_call', kind < 88, 'cdr_push',
            kind < 93, 'tencent.voicecode', kind < 98, 'callback_call', 'cdr_push') AS source,
    source AS route,
    concat('ING', toString(number)) AS ingest_id,
    0 AS report_index,
    occurred + toIntervalSecond(number % 7) + {copy_delay:UInt32} AS received_at,
    occurred AS occurred_at,
    concat('1400', toString(number % {apps:UInt32})) AS app_id,
    if(kind < 70, concat('sid-', toString(intDiv(number, 2))), NULL) AS sid,
    if(kind >= 70 AND kind < 98, concat('call-', toString(intDiv(number, 5))), NULL) AS call_id,
    if(kind >= 80 AND kind < 88, concat('req-', toString(number)), NULL) AS request_id,
    concat('+86138', leftPad(toString(number % 100000000), 8, '0')) AS to_e164,
    multiIf(kind < 70, if(number % 10 < 9, 'delivered', 'failed'), kind < 80, 'ringing',
            number % 2 = 0, 'answered', 'no_answer') AS status,
    if(kind < 70, if(number % 10 < 9, 'DELIVRD', 'UNDELIV'), NULL) AS vendor_code,
    if(kind >= 80 AND kind < 88, toInt64(number % 300), NULL) AS duration_s,
    if(kind >= 88 AND kind < 93, toInt64(1 + number % 5), NULL) AS billable_minutes,
    if(kind >= 80 AND kind < 88, toDecimal64((number % 300) / 100, 6), NULL) AS charge,
    if(kind >= 80 AND kind < 88, 'CNY', NULL) AS currency,
    'bench' AS normalizer_version,
    concat('tenant-', toString(number % {tenants:UInt32})) AS tenant,
    'China Mobile' AS carrier
FROM (
    SELECT number, number % 100 AS kind,
           toDateTime64(
               {first:DateTime64(6)} + toIntervalSecond(intDiv(number * {span_s:UInt64}, {rows:UInt64})), 6, 'UTC'
           ) AS occurred
    FROM numbers({start:UInt64}, {count:UInt64})
    WHERE number % {every:UInt64} = {residue:UInt64}
)
"""


@dataclass(frozen=True)
class CookbookQuery:
    name: str
    sql: str
    target_s: float | None


def cookbook(day: str, hour: str, call_id: str) -> list[CookbookQuery]:
    return [
        CookbookQuery(
            "one day's billing per tenant and app",
            f"""
            SELECT tenant, app_id, source, count() AS events, sum(charge) AS charge,
                   sum(billable_minutes) AS billable_minutes, sum(duration_s) AS duration_s
            FROM ringback.events
            WHERE occurred_at >= toDateTime64('{day} 00:00:00', 6, 'UTC')
              AND occurred_at < toDateTime64('{day} 00:00:00', 6, 'UTC') + INTERVAL 1 DAY
            GROUP BY tenant, app_id, source""",
            1.0,
        ),
        CookbookQuery(
            "one call's timeline",
            f"""
            SELECT event_time, event_type, status, leg FROM ringback.events WHERE call_id = '{call_id}'
            ORDER BY event_time""",
            0.2,
        ),
        CookbookQuery(
            "one hour's SMS funnel (final status per message)",
            f"""
            SELECT final_status, count() AS messages FROM (
                SELECT argMax(status, (event_time, received_at)) AS final_status FROM ringback.events
                WHERE event_type = 'sms.delivery_report' AND occurred_at >= toDateTime64('{hour}', 6, 'UTC')
                  AND occurred_at < toDateTime64('{hour}', 6, 'UTC') + INTERVAL 1 HOUR
                GROUP BY tenant, sid, to_e164)
            GROUP BY final_status""",
            1.0,
        ),
        CookbookQuery(
            "total charge (everything, exact)",
            "SELECT sum(charge) AS charge, count() AS events FROM ringback.events",
            None,
        ),
        CookbookQuery(
            "one tenant's dead letters by reason",
            (
                "SELECT failure_type, sum(requests) FROM ringback.dead_letters_by_reason WHERE tenant = 'tenant-1' "
                "GROUP BY failure_type"
            ),
            None,
        ),
    ]


def _generate(client: Any, rows: int, days: int) -> None:
    span_s = days * 86_400
    first = FIRST_DAY.replace(tzinfo=None)
    for start in range(0, rows, CHUNK_ROWS):
        count = min(CHUNK_ROWS, rows - start)
        base = {
            "first": first,
            "span_s": span_s,
            "rows": rows,
            "start": start,
            "count": count,
            "apps": APPS,
            "tenants": TENANTS,
        }
        client.command(GENERATE, parameters={**base, "every": 1, "residue": 0, "copy_delay": 0})
        client.command(
            GENERATE, parameters={**base, "every": RESENT_EVERY, "residue": 0, "copy_delay": 3600}
        )  # the later copies


def _wait_for_merges(client: Any) -> float:
    started = time.monotonic()
    while time.monotonic() - started < MERGE_WAIT_S:
        active = client.query("SELECT count() FROM system.merges WHERE database = 'ringback'").result_rows[0][0]
        if not active:
            break
        time.sleep(2)
    return time.monotonic() - started


def _time(client: Any, sql: str) -> list[float]:
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        client.query(sql)
        timings.append(time.perf_counter() - started)
    return timings


def run(results: Path, rows: int, days: int) -> dict[str, Any]:
    store = (results / "queries-store").resolve()  # a chdb:// DSN needs an absolute path
    results.mkdir(parents=True, exist_ok=True)
    client = clickhouse.connect(f"chdb://{store}")
    clickhouse.apply_ddl(client, SCHEMAS)
    existing = client.query("SELECT count() FROM ringback.event_copies").result_rows[0][0]
    generated_s = 0.0
    if existing == 0:
        started = time.monotonic()
        _generate(client, rows, days)
        generated_s = time.monotonic() - started
    merge_wait_s = _wait_for_merges(client)
    stats = client.query(
        "SELECT count() AS copies, uniqExact(partition) AS partitions, count() FROM system.parts WHERE database = "
        "'ringback' AND table = 'event_copies' AND active"
    ).result_rows[0]
    copies = client.query("SELECT count() FROM ringback.event_copies").result_rows[0][0]
    disk = client.query(
        "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'ringback' AND table = 'event_copies' AND active"
    ).result_rows[0][0]
    day = (FIRST_DAY + timedelta(days=days // 2)).strftime("%Y-%m-%d")
    hour = (FIRST_DAY + timedelta(days=days // 2, hours=10)).strftime("%Y-%m-%d %H:00:00")
    call_id = f"call-{rows // 10 + 14}"
    timings = {
        q.name: {
            "best_s": round(min(t := _time(client, q.sql)), 3),
            "median_s": round(statistics.median(t), 3),
            "target_s": q.target_s,
        }
        for q in cookbook(day, hour, call_id)
    }
    report = {
        "rows_generated": rows,
        "days": days,
        "rows_per_day": rows // days,
        "copies_stored": copies,
        "parts": stats[0],
        "partitions": stats[1],
        "bytes_on_disk": disk,
        "generate_s": round(generated_s, 1),
        "merge_wait_s": round(merge_wait_s, 1),
        "queries": timings,
    }
    (results / "bench-queries.json").write_text(json.dumps(report, indent=2))
    client.close()
    return report


def render(report: dict[str, Any]) -> str:
    lines = [
        (
            f"{report['copies_stored']:,} copies stored ({report['rows_generated']:,} events over {report['days']} "
            "days, "
            f"{report['rows_per_day']:,} a day, one in {RESENT_EVERY} twice), {report['bytes_on_disk'] / 1e9:.1f} GB "
            "on disk, "
            f"{report['parts']} parts in {report['partitions']} partitions"
        ),
        f"{'query':<52} {'best':>8} {'median':>8} {'target':>8}",
    ]
    for name, t in report["queries"].items():
        target = f"{t['target_s']:g} s" if t["target_s"] else "-"
        lines.append(f"{name:<52} {t['best_s']:>7.3f}s {t['median_s']:>7.3f}s {target:>8}")
    return "\n".join(lines)
