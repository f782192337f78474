-- Billing conflicts: the same event (same event_id: the same vendor report, by its identity fields)
-- arriving again with other billing values (charge, billed seconds, billable minutes, status). The
-- first arrival is what ringback.events shows and billing counts; every different version is kept here,
-- and the sink records each conflicting event in ringback.event_conflicts (and counts it in
-- ringback_sink_event_conflicts), so a disagreement is visible instead of silently resolved.
--
-- One row per distinct set of billing values of an event, its first arrival kept.
CREATE TABLE IF NOT EXISTS ringback.event_variants {on_cluster}
(
    event_id            String,
    tenant              LowCardinality(String),
    event_type          LowCardinality(String),
    occurred_at         Nullable(DateTime64(6, 'UTC')),
    billing_hash        UInt64,
    status              LowCardinality(String),
    charge              Nullable(Decimal(18, 6)),
    duration_s          Nullable(Int64),
    billable_minutes    Nullable(Int64),
    received_at         DateTime64(6, 'UTC'),
    ingest_id           String,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3),
    source              LowCardinality(String) DEFAULT '',
    app_id              Nullable(String),
    sid                 Nullable(String),
    call_id             Nullable(String),
    request_id          Nullable(String),
    arrival_rank        UInt64 MATERIALIZED 18446744073709551615 - toUInt64(toUnixTimestamp64Micro(received_at)),
    INDEX inserted_at_minmax inserted_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(arrival_rank)
PARTITION BY toYYYYMM(ifNull(occurred_at, toDateTime64(0, 6, 'UTC')))
ORDER BY (event_id, billing_hash);

-- Stores created before variants carried the event's source, app and vendor ids gain them.
ALTER TABLE ringback.event_variants {on_cluster} ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT '' AFTER inserted_at;
ALTER TABLE ringback.event_variants {on_cluster} ADD COLUMN IF NOT EXISTS app_id Nullable(String) AFTER source;
ALTER TABLE ringback.event_variants {on_cluster} ADD COLUMN IF NOT EXISTS sid Nullable(String) AFTER app_id;
ALTER TABLE ringback.event_variants {on_cluster} ADD COLUMN IF NOT EXISTS call_id Nullable(String) AFTER sid;
ALTER TABLE ringback.event_variants {on_cluster} ADD COLUMN IF NOT EXISTS request_id Nullable(String) AFTER call_id;

-- A new version of the view is created before the older one is dropped, so no insert in between goes
-- unrecorded; a variant recorded twice collapses.
CREATE MATERIALIZED VIEW IF NOT EXISTS ringback.event_variants_from_copies_v2 {on_cluster} TO ringback.event_variants AS
SELECT event_id, tenant, event_type, occurred_at, cityHash64(toString((status, charge, duration_s, billable_minutes))) AS billing_hash,
       status, charge, duration_s, billable_minutes, received_at, ingest_id, source, app_id, sid, call_id, request_id
FROM ringback.event_copies;

DROP VIEW IF EXISTS ringback.event_variants_from_copies {on_cluster};

-- Each event whose copies disagree on billing values: every version, oldest first (written by the sink
-- when it finds a conflict it has not recorded, or one with more versions than recorded). source, app_id
-- and the vendor ids are the first arrival's.
CREATE TABLE IF NOT EXISTS ringback.event_conflicts {on_cluster}
(
    event_id            String,
    tenant              LowCardinality(String),
    event_type          LowCardinality(String),
    source              LowCardinality(String) DEFAULT '',
    app_id              Nullable(String),
    sid                 Nullable(String),
    call_id             Nullable(String),
    request_id          Nullable(String),
    versions            UInt32,
    first_received_at   DateTime64(6, 'UTC'),
    received_at         Array(DateTime64(6, 'UTC')),
    ingest_id           Array(String),
    status              Array(String),
    charge              Array(Nullable(Decimal(18, 6))),
    duration_s          Array(Nullable(Int64)),
    billable_minutes    Array(Nullable(Int64)),
    detected_at         DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(detected_at)
ORDER BY (tenant, event_id);

-- Stores created before conflicts named the event's source, app and vendor ids gain them.
ALTER TABLE ringback.event_conflicts {on_cluster} ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT '' AFTER event_type;
ALTER TABLE ringback.event_conflicts {on_cluster} ADD COLUMN IF NOT EXISTS app_id Nullable(String) AFTER source;
ALTER TABLE ringback.event_conflicts {on_cluster} ADD COLUMN IF NOT EXISTS sid Nullable(String) AFTER app_id;
ALTER TABLE ringback.event_conflicts {on_cluster} ADD COLUMN IF NOT EXISTS call_id Nullable(String) AFTER sid;
ALTER TABLE ringback.event_conflicts {on_cluster} ADD COLUMN IF NOT EXISTS request_id Nullable(String) AFTER call_id;
