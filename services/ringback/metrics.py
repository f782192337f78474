"""Prometheus metrics of every role, defined in one place."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# --- every consuming role (the stream driver) ---
CONSUMER_LAG = Gauge(
    "ringback_consumer_lag_messages",
    "Messages between a role's position and the end of a partition.",
    ["role", "topic", "partition"],
)
RETRYING_SECONDS = Gauge(
    "ringback_retrying_seconds",
    "How long an operation has kept failing (0 when it works), by role and operation.",
    ["role", "what"],
)
ALARM = Gauge(
    "ringback_alarm",
    "1 while an operation has failed for longer than retry_alarm_after_s, by role and operation.",
    ["role", "what"],
)

# --- edge ---
EDGE_REFUSED = Counter(
    "ringback_edge_refused_total",
    (
        "Callbacks refused before anything was published, by route and reason (unknown_tenant, wrong_secret, "
        "address_not_allowed, anonymous_not_allowed, rate_limited)."
    ),
    ["route", "reason"],
)
EDGE_TENANT_RELOADS = Counter(
    "ringback_edge_tenant_reloads_total", "Tenants file reloads, by result (loaded, refused).", ["result"]
)
EDGE_REQUESTS = Counter(
    "ringback_edge_requests_total",
    (
        "Callback requests by route and outcome (accepted, journaled, spooled: answered with success; too_large, "
        "too_slow, overloaded, not_durable, bad_encoding, unsupported_encoding, unsupported_expect: failed)."
    ),
    ["route", "outcome"],
)
EDGE_REQUEST_SECONDS = Histogram(
    "ringback_edge_request_seconds", "Time from request start to reply.", ["route"], buckets=LATENCY_BUCKETS
)
EDGE_BODY_BYTES = Counter("ringback_edge_body_bytes_total", "Callback body bytes accepted.", ["route"])
EDGE_IN_FLIGHT = Gauge("ringback_edge_in_flight_requests", "Callback requests being handled now.")
EDGE_IN_FLIGHT_BYTES = Gauge(
    "ringback_edge_in_flight_bytes", "Body bytes (as arrived and as decoded) held by the requests being handled now."
)
EDGE_SHED = Counter(
    "ringback_edge_shed_total",
    (
        "Callback requests shed with a retryable failure for lack of room, by reason (in_flight_requests, "
        "in_flight_bytes: the whole edge; address_share_requests, address_share_bytes: one address over its share)."
    ),
    ["reason"],
)
EDGE_CONNECTIONS = Gauge("ringback_edge_connections", "Open HTTP connections.")
EDGE_CONNECTIONS_REFUSED = Counter(
    "ringback_edge_connections_refused_total",
    "Connections refused at once, by reason (total_limit, per_address_limit).",
    ["reason"],
)
EDGE_PROTOCOL_ERRORS = Counter(
    "ringback_edge_protocol_errors_total",
    "Connections ended for malformed or too slow HTTP, by reason (bad_request, header_timeout, internal_error).",
    ["reason"],
)
EDGE_SPOOLED = Counter(
    "ringback_edge_spooled_total",
    "Spool mode: callbacks made durable in the journal because the broker did not take them in time.",
)
EDGE_SPOOL_DRAINED = Counter(
    "ringback_edge_spool_drained_total", "Spool mode: spooled callbacks later published to the broker."
)
EDGE_PUBLISHED = Counter(
    "ringback_edge_journal_published_total",
    "Callbacks published from the journal to the raw topic (again after a broker reset).",
)
EDGE_JOURNAL_TRIMMED = Counter(
    "ringback_edge_journal_trimmed_total",
    "Callbacks the journal let go of (journal mode: stored by the sink; spool mode: taken by the broker).",
)
EDGE_JOURNAL_BYTES = Gauge("ringback_edge_journal_bytes", "Bytes the journal holds (not yet let go of).")
EDGE_JOURNAL_RECORDS = Gauge("ringback_edge_journal_records", "Callbacks the journal holds (not yet let go of).")
EDGE_JOURNAL_OLDEST_AGE = Gauge(
    "ringback_edge_journal_oldest_age_seconds",
    "Journal mode: age of the oldest callback not yet known to be stored (0 when none).",
)
EDGE_UNPUBLISHED = Gauge(
    "ringback_edge_unpublished_records", "Callbacks in the journal not yet acknowledged by the broker."
)
EDGE_REPUBLISHED = Counter(
    "ringback_edge_journal_republished_total",
    "Callbacks published again because they stayed unstored while later ones were stored.",
    [],
)
EDGE_BROKER_RESETS = Counter(
    "ringback_edge_broker_resets_total",
    "Times the broker was found to have started afresh, and the journal was published again.",
)
EDGE_QUARANTINED = Counter(
    "ringback_edge_quarantined_total", "Journaled callbacks the broker refused for their size, set aside on disk."
)

# --- normalizer ---
NORMALIZER_MESSAGES = Counter("ringback_normalizer_messages_total", "Raw messages normalized, by route.", ["route"])
NORMALIZER_REPLAYED = Counter(
    "ringback_normalizer_replayed_total",
    "Of those, requests `ringback replay` sent through again, by route.",
    ["route"],
)
NORMALIZER_EVENTS = Counter("ringback_normalizer_events_total", "Normalized events produced.", ["route", "event_type"])
NORMALIZER_DEAD_LETTERS = Counter(
    "ringback_normalizer_dead_letters_total",
    "Failed reports (or whole requests) in dead letters, by reason; one dead-letter message per request.",
    ["route", "reason"],
)
NORMALIZER_GUARD_TRIPPED = Gauge(
    "ringback_normalizer_guard_tripped", "1 while the dead-letter guard holds consuming paused, else 0."
)
NORMALIZER_GUARD_TRIPS = Counter("ringback_normalizer_guard_trips_total", "Times the dead-letter guard tripped.")
NORMALIZER_BATCH_SECONDS = Histogram(
    "ringback_normalizer_batch_seconds", "Time to normalize, publish and commit one poll.", buckets=LATENCY_BUCKETS
)

# --- sink ---
SINK_ROWS = Counter("ringback_sink_rows_total", "Rows inserted into ClickHouse.", ["table"])
SINK_INSERT_SECONDS = Histogram(
    "ringback_sink_insert_seconds", "Time of one ClickHouse batch insert.", ["table"], buckets=LATENCY_BUCKETS
)
SINK_INSERT_FAILURES = Counter("ringback_sink_insert_failures_total", "Failed ClickHouse insert attempts.", ["table"])
SINK_UNSTORABLE = Counter(
    "ringback_sink_unstorable_total", "Events ClickHouse refused for their values, kept in dead_letters.", []
)
SINK_UNDECODABLE = Counter(
    "ringback_sink_undecodable_total", "Normalized-topic messages the sink could not decode.", []
)
SINK_CHECKED_BATCHES = Counter(
    "ringback_sink_checked_batches_total",
    "Event batches ClickHouse refused as Avro containers, stored through the slower checked path.",
    [],
)
SINK_EVENT_CONFLICTS = Counter(
    "ringback_sink_event_conflicts_total",
    (
        "Events found whose copies arrived with different billing values (the first arrival is kept; see "
        "ringback.event_conflicts)."
    ),
    [],
)
SINK_LAST_INSERT = Gauge(
    "ringback_sink_last_insert_timestamp_seconds", "Unix time of the last successful insert, by table.", ["table"]
)
ANALYST_VIEWS = Gauge(
    "ringback_analyst_views",
    "Saved analyst views at the sink's last start: applied, or refused (see its log).",
    ["state"],
)
SINK_PENDING_ROWS = Gauge("ringback_sink_pending_rows", "Rows buffered, waiting for the next flush.")

# --- `ringback run` itself (its supervisor's /metrics) ---
RUN_RECYCLE_WAITING = Gauge(
    "ringback_run_recycle_waiting_seconds",
    "How long a recycle of the embedded broker has waited for consumer groups on the normalized topic to catch up "
    "(0 when none is waiting).",
)
RUN_BROKER_RECYCLES = Counter(
    "ringback_run_broker_recycles_total",
    "Recycles of the embedded broker by outcome: caught_up (no consumer group behind), consumers_behind (recycled "
    "after embedded_broker_recycle_wait_s with a group behind, which loses what the broker held).",
    ["outcome"],
)
# --- revenue assurance: the sink counts the rows of the assurance views every assurance_check_interval_s ---
SINK_MISSING_CDRS = Gauge(
    "ringback_sink_missing_cdrs",
    "Answered calls with no CDR or hang-up record past cdr_grace_minutes (rows of ringback.missing_cdrs).",
)
SINK_STUCK_MESSAGES = Gauge(
    "ringback_sink_stuck_messages",
    "SMS whose last receipt is not final past receipt_grace_hours (rows of ringback.stuck_messages).",
)
SINK_CHARGE_DIFFERENCES = Gauge(
    "ringback_sink_charge_differences",
    "Priced events whose vendor charge differs from the rated charge (rows of ringback.charge_differences).",
)
SINK_ASSURANCE_CHECKED = Gauge(
    "ringback_sink_assurance_checked_timestamp_seconds", "Unix time the assurance views were last counted."
)


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


#: The roles that run the stream driver, and so export its metrics (with a ``role`` label).
CONSUMING_ROLES = ("normalizer", "sink")


@dataclass(frozen=True)
class MetricInfo:
    """One metric as a Prometheus server sees it (the catalog in deploy/metrics.md is made of these)."""

    name: str  # as exposed: counters end in _total; a histogram's series add _bucket, _sum and _count
    kind: str  # counter, gauge, histogram
    labels: tuple[str, ...]
    meaning: str

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles exporting it: the one its name says (ringback_<role>_...; ``run``: the supervisor of
        `ringback run`), else every consuming role."""
        named = self.name.removeprefix("ringback_").split("_", 1)[0]
        return (named,) if named in ("edge", "run", *CONSUMING_ROLES) else CONSUMING_ROLES

    @property
    def series(self) -> tuple[str, ...]:
        """The names of the series a scrape holds for it."""
        if self.kind == "histogram":
            return tuple(f"{self.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        return (self.name,)


def catalog() -> list[MetricInfo]:
    """Every metric defined above, in the order of definition."""
    found = []
    for value in globals().values():
        if isinstance(value, MetricWrapperBase):
            kind = value._type
            assert kind is not None  # set by every metric class (Counter, Gauge, ...)
            name = value._name + ("_total" if kind == "counter" else "")  # the client keeps a counter's name without it
            found.append(MetricInfo(name, kind, tuple(value._labelnames), value._documentation))
    return found
