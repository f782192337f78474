#!/usr/bin/env python3
"""Write deploy/grafana/dashboards/ringback.json, the Grafana dashboard of the pipeline.

    python3 deploy/grafana/make_dashboard.py

Panels are listed here once, row by row; ids and grid positions are computed. Prometheus panels read
the roles' metrics (every metric of deploy/metrics.md is on some panel: tests/unit/test_dashboards.py
checks it), ClickHouse panels read the tables through the ClickHouse data source plugin
(grafana-clickhouse-datasource, SQL editor). Both data sources are dashboard variables, so the file
imports into any Grafana; deploy/grafana/provisioning/ provisions them for the compose stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards" / "ringback.json"
UID = "ringback-pipeline"
GRID_WIDTH = 24
PROMETHEUS = {"type": "prometheus", "uid": "${prometheus}"}
CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "${clickhouse}"}
#: The ClickHouse plugin's result formats (its `format` field).
CH_TIME_SERIES, CH_TABLE = 0, 1
RATE = "$__rate_interval"

Target = dict[str, Any]


def prom(expr: str, legend: str = "") -> Target:
    target: Target = {"datasource": PROMETHEUS, "expr": expr, "range": True}
    if legend:
        target["legendFormat"] = legend
    return target


def prom_instant(expr: str, legend: str = "") -> Target:
    return {**prom(expr, legend), "range": False, "instant": True}


def sql(query: str, table: bool = False) -> Target:
    return {
        "datasource": CLICKHOUSE,
        "editorType": "sql",
        "queryType": "table" if table else "timeseries",
        "format": CH_TABLE if table else CH_TIME_SERIES,
        "rawSql": query,
    }


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[Target],
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    **extra: Any,
) -> dict[str, Any]:
    datasource = targets[0]["datasource"]
    body: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "targets": [{"refId": chr(ord("A") + i), **t} for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit, **extra.pop("defaults", {})}, "overrides": []},
        "gridPos": {"h": height, "w": width, "x": 0, "y": 0},
    }
    if kind == "timeseries":
        body["options"] = {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif kind == "stat":
        body["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        }
    elif kind == "table":
        body["options"] = {
            "showHeader": True,
            "cellHeight": "sm",
            "footer": {"show": False, "reducer": ["sum"], "fields": ""},
        }
    body.update(extra)
    return body


def thresholds(*steps: tuple[str, float | None]) -> dict[str, Any]:
    return {"thresholds": {"mode": "absolute", "steps": [{"color": color, "value": value} for color, value in steps]}}


OK_OR_RED = thresholds(("green", None), ("red", 1))


def stat(
    title: str, description: str, target: Target, unit: str = "short", limits: dict[str, Any] | None = None
) -> dict[str, Any]:
    return panel("stat", title, description, [target], unit=unit, width=4, height=4, defaults=limits or OK_OR_RED)


def ts(title: str, description: str, *targets: Target, unit: str = "short", width: int = 12) -> dict[str, Any]:
    return panel("timeseries", title, description, list(targets), unit=unit, width=width)


ROWS: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "Overview",
        [
            stat(
                "Callbacks answered with success",
                "Requests per second the edges made durable and answered with success (accepted, journaled, spooled).",
                prom_instant(
                    f'sum(rate(ringback_edge_requests_total{{outcome=~"accepted|journaled|spooled"}}[{RATE}]))'
                ),
                unit="reqps",
                limits=thresholds(("blue", None)),
            ),
            stat(
                "Oldest callback not stored",
                "Age of the oldest callback an edge answered that ClickHouse does not hold yet (journal mode).",
                prom_instant("max(ringback_edge_journal_oldest_age_seconds)"),
                unit="s",
                limits=thresholds(("green", None), ("orange", 60), ("red", 300)),
            ),
            stat(
                "Alarms",
                "Operations failing for longer than retry_alarm_after_s, all roles.",
                prom_instant("sum(ringback_alarm)"),
            ),
            stat(
                "Guard tripped",
                "Normalizers whose dead-letter guard holds consuming paused.",
                prom_instant("sum(ringback_normalizer_guard_tripped)"),
            ),
            stat(
                "Since the last event insert",
                "Seconds since a sink last inserted into ringback.events.",
                prom_instant('time() - max(ringback_sink_last_insert_timestamp_seconds{table="ringback.events"})'),
                unit="s",
                limits=thresholds(("green", None), ("orange", 60), ("red", 300)),
            ),
            stat(
                "Reconcile gaps",
                (
                    "Closed hours in which acknowledged requests have nothing stored (ringback reconcile, through the "
                    "exporter)."
                ),
                prom_instant('sum(ringback_reconcile_lines{check="gap"})'),
            ),
        ],
    ),
    (
        "Edge",
        [
            ts(
                "Requests by route and outcome",
                (
                    "ringback_edge_requests_total: accepted, journaled, spooled are answered with success; the others "
                    "failed."
                ),
                prom(f"sum by (route, outcome) (rate(ringback_edge_requests_total[{RATE}]))", "{{route}} {{outcome}}"),
                unit="reqps",
            ),
            ts(
                "Reply latency",
                "Time from request start to reply, by route: the 99th and 50th percentiles, and the mean.",
                prom(
                    (
                        "histogram_quantile(0.99, sum by (route, le) "
                        f"(rate(ringback_edge_request_seconds_bucket[{RATE}])))"
                    ),
                    "p99 {{route}}",
                ),
                prom(
                    f"histogram_quantile(0.5, sum by (route, le) (rate(ringback_edge_request_seconds_bucket[{RATE}])))",
                    "p50 {{route}}",
                ),
                prom(
                    (
                        f"sum by (route) (rate(ringback_edge_request_seconds_sum[{RATE}])) / sum by (route) "
                        f"(rate(ringback_edge_request_seconds_count[{RATE}]))"
                    ),
                    "mean {{route}}",
                ),
                unit="s",
            ),
            ts(
                "Refusals by route and reason",
                (
                    "Callbacks refused before anything was published: unknown tenant, wrong secret, address not "
                    "allowed, anonymous not allowed, rate limited."
                ),
                prom(f"sum by (route, reason) (rate(ringback_edge_refused_total[{RATE}]))", "{{route}} {{reason}}"),
                unit="reqps",
            ),
            ts(
                "Body bytes accepted",
                "Callback body bytes per second, by route.",
                prom(f"sum by (route) (rate(ringback_edge_body_bytes_total[{RATE}]))", "{{route}}"),
                unit="Bps",
            ),
            ts(
                "In flight",
                "Requests being handled now and the body bytes they hold, per edge; requests shed for lack of room, "
                "per second.",
                prom("ringback_edge_in_flight_requests", "requests {{instance}}"),
                prom("ringback_edge_in_flight_bytes", "bytes {{instance}}"),
                prom(
                    f"sum by (instance, reason) (rate(ringback_edge_shed_total[{RATE}]))",
                    "shed {{instance}} {{reason}}",
                ),
            ),
            ts(
                "Connections",
                (
                    "Open connections per edge; connections refused at once and ended for malformed or slow HTTP, per "
                    "second."
                ),
                prom("ringback_edge_connections", "open {{instance}}"),
                prom(
                    f"sum by (instance, reason) (rate(ringback_edge_connections_refused_total[{RATE}]))",
                    "refused {{instance}} {{reason}}",
                ),
                prom(
                    f"sum by (instance, reason) (rate(ringback_edge_protocol_errors_total[{RATE}]))",
                    "protocol error {{instance}} {{reason}}",
                ),
            ),
            ts(
                "Journal depth",
                (
                    "Callbacks the journal holds, those the broker has not acknowledged yet, and the journal's bytes, "
                    "per edge."
                ),
                prom("ringback_edge_journal_records", "held {{instance}}"),
                prom("ringback_edge_unpublished_records", "unpublished {{instance}}"),
                prom("ringback_edge_journal_bytes", "bytes {{instance}}"),
            ),
            ts(
                "Oldest callback not stored",
                "Age of the oldest callback each edge answered that is not known to be stored.",
                prom("ringback_edge_journal_oldest_age_seconds", "{{instance}}"),
                unit="s",
            ),
            ts(
                "Journal flow",
                (
                    "Spool mode: callbacks spooled because the broker was late, and spooled callbacks published "
                    "later; every mode: published from the journal and let go of."
                ),
                prom(f"sum by (instance) (rate(ringback_edge_spooled_total[{RATE}]))", "spooled {{instance}}"),
                prom(
                    f"sum by (instance) (rate(ringback_edge_spool_drained_total[{RATE}]))", "spool drained {{instance}}"
                ),
                prom(
                    f"sum by (instance) (rate(ringback_edge_journal_published_total[{RATE}]))", "published {{instance}}"
                ),
                prom(f"sum by (instance) (rate(ringback_edge_journal_trimmed_total[{RATE}]))", "let go {{instance}}"),
                prom(
                    f"sum by (instance) (rate(ringback_edge_journal_republished_total[{RATE}]))",
                    "republished {{instance}}",
                ),
                unit="ops",
            ),
            ts(
                "Broker resets, quarantined callbacks, tenant reloads",
                (
                    "Events in the window: the broker found started afresh (the journal published again), callbacks "
                    "set aside for their size, tenants file reloads by result."
                ),
                prom(
                    f"sum by (instance) (increase(ringback_edge_broker_resets_total[{RATE}]))",
                    "broker reset {{instance}}",
                ),
                prom(
                    f"sum by (instance) (increase(ringback_edge_quarantined_total[{RATE}]))", "quarantined {{instance}}"
                ),
                prom(
                    f"sum by (instance, result) (increase(ringback_edge_tenant_reloads_total[{RATE}]))",
                    "tenants {{result}} {{instance}}",
                ),
            ),
            ts(
                "Broker recycles and topic consumers",
                (
                    "`ringback run` recycling its embedded broker: recycles by outcome (consumers_behind: a billing "
                    "job lost what the broker held), and how long a recycle has waited for topic consumers."
                ),
                prom(
                    f"sum by (instance, outcome) (increase(ringback_run_broker_recycles_total[{RATE}]))",
                    "recycled {{outcome}} {{instance}}",
                ),
                prom("max by (instance) (ringback_run_recycle_waiting_seconds)", "waiting s {{instance}}"),
            ),
        ],
    ),
    (
        "Normalizer",
        [
            ts(
                "Raw messages normalized",
                "Raw messages per second, by route; of those, requests `ringback replay` sent through again.",
                prom(f"sum by (route) (rate(ringback_normalizer_messages_total[{RATE}]))", "{{route}}"),
                prom(f"sum by (route) (rate(ringback_normalizer_replayed_total[{RATE}]))", "replayed {{route}}"),
                unit="ops",
            ),
            ts(
                "Events produced",
                "Normalized events per second, by event type.",
                prom(f"sum by (event_type) (rate(ringback_normalizer_events_total[{RATE}]))", "{{event_type}}"),
                unit="ops",
            ),
            ts(
                "Dead letters by route and reason",
                "Failed reports (or whole requests) per second, by route and reason.",
                prom(
                    f"sum by (route, reason) (rate(ringback_normalizer_dead_letters_total[{RATE}]))",
                    "{{route}} {{reason}}",
                ),
                unit="ops",
            ),
            ts(
                "Dead-letter guard",
                "1 while the guard holds consuming paused, per normalizer; trips in the window.",
                prom("ringback_normalizer_guard_tripped", "tripped {{instance}}"),
                prom(
                    f"sum by (instance) (increase(ringback_normalizer_guard_trips_total[{RATE}]))", "trips {{instance}}"
                ),
            ),
            ts(
                "Poll time",
                "Time to normalize, publish and commit one poll: 99th percentile and mean.",
                prom(
                    f"histogram_quantile(0.99, sum by (le) (rate(ringback_normalizer_batch_seconds_bucket[{RATE}])))",
                    "p99",
                ),
                prom(
                    (
                        f"sum(rate(ringback_normalizer_batch_seconds_sum[{RATE}])) / "
                        f"sum(rate(ringback_normalizer_batch_seconds_count[{RATE}]))"
                    ),
                    "mean",
                ),
                unit="s",
            ),
        ],
    ),
    (
        "Sink",
        [
            ts(
                "Rows inserted",
                "Rows per second inserted into ClickHouse, by table.",
                prom(f"sum by (table) (rate(ringback_sink_rows_total[{RATE}]))", "{{table}}"),
                unit="rowsps",
            ),
            ts(
                "Insert latency",
                "Time of one batch insert, by table: 99th percentile and mean.",
                prom(
                    f"histogram_quantile(0.99, sum by (table, le) (rate(ringback_sink_insert_seconds_bucket[{RATE}])))",
                    "p99 {{table}}",
                ),
                prom(
                    (
                        f"sum by (table) (rate(ringback_sink_insert_seconds_sum[{RATE}])) / sum by (table) "
                        f"(rate(ringback_sink_insert_seconds_count[{RATE}]))"
                    ),
                    "mean {{table}}",
                ),
                unit="s",
            ),
            ts(
                "Since the last insert",
                "Seconds since the last successful insert, by table.",
                prom("time() - max by (table) (ringback_sink_last_insert_timestamp_seconds)", "{{table}}"),
                unit="s",
            ),
            ts(
                "Failed inserts and rows waiting",
                (
                    "Failed insert attempts per second by table (outages are retried), and rows buffered for the next "
                    "flush."
                ),
                prom(f"sum by (table) (rate(ringback_sink_insert_failures_total[{RATE}]))", "failed {{table}}"),
                prom("ringback_sink_pending_rows", "pending {{instance}}"),
            ),
            ts(
                "Checked path",
                (
                    "Event batches ClickHouse refused as Avro containers (stored through the checked path), and "
                    "events set aside as unstorable or undecodable."
                ),
                prom(f"sum(increase(ringback_sink_checked_batches_total[{RATE}]))", "checked batches"),
                prom(f"sum(increase(ringback_sink_unstorable_total[{RATE}]))", "unstorable"),
                prom(f"sum(increase(ringback_sink_undecodable_total[{RATE}]))", "undecodable"),
            ),
            ts(
                "Conflicts and saved views",
                (
                    "New events whose copies disagree on billing values (see ringback.event_conflicts), in the "
                    "window; saved analyst views at each sink's last start, applied or refused."
                ),
                prom(f"sum(increase(ringback_sink_event_conflicts_total[{RATE}]))", "conflicts"),
                prom("sum by (state) (ringback_analyst_views)", "views {{state}}"),
            ),
        ],
    ),
    (
        "Revenue assurance",
        [
            ts(
                "Missing CDRs and stuck messages",
                (
                    "Answered calls with no CDR past cdr_grace_minutes (ringback.missing_cdrs) and SMS with no final "
                    "receipt past receipt_grace_hours (ringback.stuck_messages); `ringback audit` lists them."
                ),
                prom("max(ringback_sink_missing_cdrs)", "missing CDRs"),
                prom("max(ringback_sink_stuck_messages)", "stuck messages"),
            ),
            ts(
                "Charge differences",
                (
                    "Priced events whose vendor charge differs from the rated charge by more than charge_tolerance "
                    "(ringback.charge_differences), and how long ago the views were counted."
                ),
                prom("max(ringback_sink_charge_differences)", "charge differences"),
                prom("time() - max(ringback_sink_assurance_checked_timestamp_seconds)", "seconds since counted"),
            ),
        ],
    ),
    (
        "Consumers",
        [
            ts(
                "Consumer lag",
                "Messages between each role's position and the end of each partition.",
                prom(
                    "sum by (role, topic, partition) (ringback_consumer_lag_messages)",
                    "{{role}} {{topic}}/{{partition}}",
                ),
                width=24,
            ),
            ts(
                "Retrying",
                "How long an operation has kept failing (0 when it works), by role and operation.",
                prom("max by (role, what, instance) (ringback_retrying_seconds)", "{{role}} {{what}} {{instance}}"),
                unit="s",
            ),
            ts(
                "Alarms",
                "1 while an operation has failed for longer than retry_alarm_after_s.",
                prom("max by (role, what, instance) (ringback_alarm)", "{{role}} {{what}} {{instance}}"),
            ),
        ],
    ),
    (
        "Reconcile",
        [
            ts(
                "Ledger lines by verdict",
                "Lines (tenant, route, hour) of the last ringback reconcile, by route and verdict.",
                prom("sum by (route, check) (ringback_reconcile_lines)", "{{route}} {{check}}"),
            ),
            ts(
                "Requests missing, and the exporter",
                (
                    "Acknowledged requests with nothing stored in closed hours, by route; whether the last run read "
                    "the ledger, and how long ago it did."
                ),
                prom("sum by (route) (ringback_reconcile_missing_requests)", "missing {{route}}"),
                prom("min(ringback_reconcile_up)", "up"),
                prom("time() - max(ringback_reconcile_last_run_timestamp_seconds)", "seconds since the last run"),
            ),
        ],
    ),
    (
        "ClickHouse",
        [
            panel(
                "timeseries",
                "SMS delivery rate",
                (
                    "Share of SMS delivery reports that say delivered, by tenant (ringback.events_dedup, by the time "
                    "the vendor gives)."
                ),
                [
                    sql(
                        "SELECT $__timeInterval(occurred_at) AS time, tenant, countIf(status = 'delivered') / count() "
                        "AS delivered\n"
                        "FROM ringback.events_dedup\n"
                        "WHERE event_type = 'sms.delivery_report' AND $__timeFilter(occurred_at)\n"
                        "GROUP BY time, tenant ORDER BY time"
                    )
                ],
                unit="percentunit",
            ),
            panel(
                "table",
                "Billing today (billing time zone), per tenant",
                (
                    "Events, charge, billable minutes and billed seconds of today in the store's billing time zone "
                    "(setting billing_timezone, Asia/Shanghai by default; ringback.billing_today), per tenant and "
                    "app: the billing query of docs/billing.md."
                ),
                [
                    sql(
                        "SELECT tenant, app_id, count() AS events, sum(charge) AS charge, any(currency) AS currency,\n"
                        "       sum(billable_minutes) AS billable_minutes, sum(duration_s) AS duration_s\n"
                        "FROM ringback.events_dedup\n"
                        "WHERE occurred_at >= (SELECT starts_at FROM ringback.billing_today)\n"
                        "  AND occurred_at < (SELECT ends_at FROM ringback.billing_today)\n"
                        "GROUP BY tenant, app_id ORDER BY charge DESC",
                        table=True,
                    )
                ],
            ),
            panel(
                "timeseries",
                "Dead letters stored",
                "Dead-lettered requests stored in ringback.dead_letters, by failure type.",
                [
                    sql(
                        "SELECT $__timeInterval(received_at) AS time, failure_type, count() AS requests\n"
                        "FROM ringback.dead_letters\n"
                        "WHERE $__timeFilter(received_at)\n"
                        "GROUP BY time, failure_type ORDER BY time"
                    )
                ],
            ),
            panel(
                "table",
                "Latest dead letters",
                "The newest dead letters in the window: where, why, and the body's digest.",
                [
                    sql(
                        "SELECT received_at, tenant, route, failure_type, reason, report_count, failed_reports, "
                        "body_sha256\n"
                        "FROM ringback.dead_letters\n"
                        "WHERE $__timeFilter(received_at)\n"
                        "ORDER BY received_at DESC LIMIT 100",
                        table=True,
                    )
                ],
            ),
        ],
    ),
]


def layout(rows: list[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Rows and their panels, left to right and top to bottom, with ids in order."""
    panels: list[dict[str, Any]] = []
    y = 0
    for title, members in rows:
        panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
            }
        )
        y += 1
        x, line_height = 0, 0
        for member in members:
            width, height = member["gridPos"]["w"], member["gridPos"]["h"]
            if x + width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            member["gridPos"] = {"h": height, "w": width, "x": x, "y": y}
            x += width
            line_height = max(line_height, height)
            panels.append(member)
        y += line_height
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    return panels


def datasource_variable(name: str, label: str, plugin: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "datasource",
        "query": plugin,
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
        "skipUrlSync": False,
    }


def dashboard() -> dict[str, Any]:
    return {
        "uid": UID,
        "title": "ringback",
        "description": (
            "The callback pipeline: edge, normalizer, sink, consumers, reconcile (Prometheus) and what is stored "
            "(ClickHouse)."
        ),
        "tags": ["ringback"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": [],
        "annotations": {"list": []},  # Grafana adds its built-in annotations and alerts
        "templating": {
            "list": [
                datasource_variable("prometheus", "Prometheus", "prometheus"),
                datasource_variable("clickhouse", "ClickHouse", "grafana-clickhouse-datasource"),
            ]
        },
        "panels": layout(ROWS),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render(), encoding="utf-8")
