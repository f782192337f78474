-- One row per normalized event; columns mirror schemas/normalized_event.avsc.
-- ReplacingMergeTree keyed by event_id: a resent vendor report (same event_id) collapses to one row.
-- No partition key on purpose: duplicates only collapse inside one partition, and a resend may arrive
-- in another month than the original, so partitioning by receive time could double-bill.
-- non_replicated_deduplication_window makes a retried insert with the same insert_deduplication_token a no-op.
CREATE TABLE IF NOT EXISTS ringback.events {on_cluster}
(
    event_id            String,
    event_type          LowCardinality(String),
    source              LowCardinality(String),
    route               LowCardinality(String),
    ingest_id           String,
    report_index        Int32,
    received_at         DateTime64(6, 'UTC'),
    occurred_at         Nullable(DateTime64(6, 'UTC')),
    app_id              Nullable(String),
    sid                 Nullable(String),
    call_id             Nullable(String),
    request_id          Nullable(String),
    from_number         Nullable(String),
    from_e164           Nullable(String),
    to_number           Nullable(String),
    to_e164             Nullable(String),
    status              LowCardinality(String),
    vendor_status       Nullable(String),
    vendor_code         Nullable(String),
    vendor_description  Nullable(String),
    leg                 LowCardinality(Nullable(String)),
    started_at          Nullable(DateTime64(6, 'UTC')),
    ringing_at          Nullable(DateTime64(6, 'UTC')),
    answered_at         Nullable(DateTime64(6, 'UTC')),
    ended_at            Nullable(DateTime64(6, 'UTC')),
    caller_started_at   Nullable(DateTime64(6, 'UTC')),
    caller_ringing_at   Nullable(DateTime64(6, 'UTC')),
    caller_answered_at  Nullable(DateTime64(6, 'UTC')),
    caller_ended_at     Nullable(DateTime64(6, 'UTC')),
    callee_started_at   Nullable(DateTime64(6, 'UTC')),
    callee_ringing_at   Nullable(DateTime64(6, 'UTC')),
    callee_answered_at  Nullable(DateTime64(6, 'UTC')),
    callee_ended_at     Nullable(DateTime64(6, 'UTC')),
    duration_s          Nullable(Int64),
    billable_minutes    Nullable(Int64),
    charge              Nullable(Decimal(18, 6)),
    currency            LowCardinality(Nullable(String)),
    recording_url       Nullable(String),
    conference_id       Nullable(String),
    key_digits          Nullable(String),
    custom_param        Nullable(String),
    attributes          Map(String, String),
    repairs             Array(String),
    normalizer_version  LowCardinality(String),
    tenant              LowCardinality(String) DEFAULT '',
    message_text        Nullable(String),
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (event_type, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Stores created with schema v1 gain the v2 columns.
ALTER TABLE ringback.events {on_cluster} ADD COLUMN IF NOT EXISTS tenant LowCardinality(String) DEFAULT '' AFTER normalizer_version;
ALTER TABLE ringback.events {on_cluster} ADD COLUMN IF NOT EXISTS message_text Nullable(String) AFTER tenant;

-- The deduplicated view analysts and billing jobs query: exactly one row per event_id.
CREATE VIEW IF NOT EXISTS ringback.events_dedup {on_cluster} AS
SELECT * FROM ringback.events FINAL;
