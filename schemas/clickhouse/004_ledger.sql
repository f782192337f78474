-- The reconciliation ledger: count deltas that each stage publishes to the ledger topic, per tenant,
-- route and hour of receipt. (instance, seq) identifies one delta, so a delta loaded twice counts once.
-- Stages: edge.accepted, normalizer.raw_messages, normalizer.reports, normalizer.events,
-- normalizer.dead_letters (published to the ledger topic), sink.events, sink.dead_letters (rows the sink
-- inserted, written by the sink in the same flush).
CREATE TABLE IF NOT EXISTS ringback.ledger {on_cluster}
(
    hour        DateTime('UTC'),
    route       LowCardinality(String),
    stage       LowCardinality(String),
    instance    String,
    seq         UInt64,
    count       UInt64,
    tenant      LowCardinality(String),
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (hour, route, stage, instance, seq, tenant)
SETTINGS non_replicated_deduplication_window = 10000;

-- Ledgers created before tenants gain the tenant, in the sort key too: one delta holds a row per
-- tenant, which must not collapse into each other (a column added to the key can have no DEFAULT).
ALTER TABLE ringback.ledger {on_cluster}
    ADD COLUMN IF NOT EXISTS tenant LowCardinality(String) AFTER count,
    MODIFY ORDER BY (hour, route, stage, instance, seq, tenant);
