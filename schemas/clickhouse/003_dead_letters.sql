-- Every dead-lettered input, loaded from the dead-letter topic, so failures are queryable beside events.
-- One row per request that could not be read in whole or in part: its body once, its failures listed
-- (failures.*: report index, reason, message; at most 100 listed) and counted by reason in full.
-- failure_type/reason/report_index are the first failure's; report_index is -1 when the request as a
-- whole could not be read. ids: the vendor ids the failed reports still carry, by the event's names
-- (sid, call_id, request_id, app_id, conference_id), e.g. WHERE has(ids['call_id'], 'abc').
-- replayed_at: set when the request failed again after `ringback replay` sent it through (the row then
-- replaces the earlier one: same route, ingest id and report index).
CREATE TABLE IF NOT EXISTS ringback.dead_letters {on_cluster}
(
    route               LowCardinality(String),
    ingest_id           String,
    report_index        Int32,
    received_at         DateTime64(6, 'UTC'),
    remote_addr         String,
    content_type        String,
    failure_type        LowCardinality(String),
    reason              String,
    normalizer_version  LowCardinality(String),
    source_topic        String,
    source_partition    Int32,
    source_offset       Int64,
    dead_lettered_at    DateTime64(6, 'UTC'),
    body                String,
    report_count        UInt32,
    failed_reports      UInt32,
    failure_counts      Map(String, UInt32),
    failures            Nested(report_index Int32, failure_type LowCardinality(String), reason String),
    body_sha256         String,
    tenant              LowCardinality(String) DEFAULT '',
    ids                 Map(String, Array(String)),
    tenant_app_id       String DEFAULT '',
    replayed_at         Nullable(DateTime64(6, 'UTC')),
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (route, ingest_id, report_index)
SETTINGS non_replicated_deduplication_window = 10000;

-- Stores created before dead letters were one row per request gain the columns.
ALTER TABLE ringback.dead_letters {on_cluster} ADD COLUMN IF NOT EXISTS report_count UInt32 AFTER body;
ALTER TABLE ringback.dead_letters {on_cluster} ADD COLUMN IF NOT EXISTS failed_reports UInt32 AFTER report_count;
ALTER TABLE ringback.dead_letters {on_cluster} ADD COLUMN IF NOT EXISTS failure_counts Map(String, UInt32) AFTER failed_reports;
ALTER TABLE ringback.dead_letters {on_cluster} ADD COLUMN IF NOT EXISTS failures Nested(report_index Int32, failure_type LowCardinality(String), reason String) AFTER failure_counts;
ALTER TABLE ringback.dead_letters {on_cluster} ADD COLUMN IF NOT EXISTS body_sha256 String AFTER failures;
ALTER TABLE ringback.dead_letters {on_cluster} ADD COLUMN IF NOT EXISTS tenant LowCardinality(String) DEFAULT '' AFTER body_sha256;
ALTER TABLE ringback.dead_letters {on_cluster} ADD COLUMN IF NOT EXISTS ids Map(String, Array(String)) AFTER tenant;
ALTER TABLE ringback.dead_letters {on_cluster} ADD COLUMN IF NOT EXISTS tenant_app_id String DEFAULT '' AFTER ids;
ALTER TABLE ringback.dead_letters {on_cluster} ADD COLUMN IF NOT EXISTS replayed_at Nullable(DateTime64(6, 'UTC')) AFTER tenant_app_id;
