-- Every dead-lettered input, loaded from the dead-letter topic, so failures are queryable beside events.
-- report_index is -1 when the whole request failed, else the position of the failed report in it.
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
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (route, ingest_id, report_index)
SETTINGS non_replicated_deduplication_window = 10000;
