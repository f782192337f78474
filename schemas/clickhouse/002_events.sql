-- Every copy of every normalized event, as inserted; columns mirror schemas/normalized_event.avsc.
-- Analysts query ringback.events (below), never this table: until background merges collapse them it
-- holds a resent or replayed report as many times as it arrived.
--
-- Copies of one event have the same event_id and the same occurred_at: the sink stores every copy with
-- the occurred_at of the event's first stored copy (ringback.event_keys_v2, below) and the copy's own vendor
-- time in reported_occurred_at, so a resend that moves the vendor's time stays in the same partition (the
-- day of occurred_at; events the vendor gives no time share one partition) and sort position: merges and
-- FINAL collapse them. The version keeps the *first* arrival: the earliest received_at has the highest
-- arrival_rank. A later copy whose billing values differ is recorded in ringback.event_conflicts, not
-- silently preferred.
-- non_replicated_deduplication_window makes a retried insert with the same insert_deduplication_token a no-op.
CREATE TABLE IF NOT EXISTS ringback.event_copies {on_cluster}
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
    carrier             LowCardinality(Nullable(String)),
    region              LowCardinality(Nullable(String)),
    reported_occurred_at Nullable(DateTime64(6, 'UTC')) DEFAULT occurred_at,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3),
    arrival_rank        UInt64 MATERIALIZED 18446744073709551615 - toUInt64(toUnixTimestamp64Micro(received_at)),
    INDEX call_id_bloom call_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX sid_bloom sid TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX request_id_bloom request_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX app_id_bloom app_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX received_at_minmax received_at TYPE minmax GRANULARITY 4
)
ENGINE = ReplacingMergeTree(arrival_rank)
PARTITION BY toYYYYMMDD(ifNull(occurred_at, toDateTime64(0, 6, 'UTC')))
ORDER BY (event_type, tenant, toStartOfHour(ifNull(occurred_at, toDateTime64(0, 6, 'UTC'))), event_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Stores created with schema v2 gain the v3 columns.
ALTER TABLE ringback.event_copies {on_cluster} ADD COLUMN IF NOT EXISTS carrier LowCardinality(Nullable(String)) AFTER message_text;
ALTER TABLE ringback.event_copies {on_cluster} ADD COLUMN IF NOT EXISTS region LowCardinality(Nullable(String)) AFTER carrier;
-- Stores created before copies shared their first copy's occurred_at: their copies' own time is occurred_at.
ALTER TABLE ringback.event_copies {on_cluster} ADD COLUMN IF NOT EXISTS reported_occurred_at Nullable(DateTime64(6, 'UTC')) DEFAULT occurred_at AFTER region;

-- The occurred_at every copy of an event is stored with, by event id: the sink looks a batch's event ids
-- up here before inserting it. Filled from every insert into event_copies; the rows of one event are equal.
-- Sorted by a 64-bit hash of the event id (MD5's first 8 bytes, which the sink computes too) and looked up
-- by it: event ids are random, so a batch's ids fall into as many granules of every part as it has ids,
-- and a lookup costs what reading and checking those granules does — eight-byte numbers instead of
-- 32-character strings (docs/speed.md). event_id stays in the sort key so that only equal rows collapse.
CREATE TABLE IF NOT EXISTS ringback.event_keys_v2 {on_cluster}
(
    event_id            String,
    occurred_at         Nullable(DateTime64(6, 'UTC')),
    id_hash             UInt64 MATERIALIZED reinterpretAsUInt64(MD5(event_id))
)
ENGINE = ReplacingMergeTree
PRIMARY KEY id_hash
ORDER BY (id_hash, event_id)
SETTINGS index_granularity = 256;

CREATE MATERIALIZED VIEW IF NOT EXISTS ringback.event_keys_v2_from_copies {on_cluster} TO ringback.event_keys_v2 AS
SELECT DISTINCT event_id, occurred_at FROM ringback.event_copies;

-- The first ringback.event_keys (sorted by the event id itself) and its view are moved into the table
-- above, then dropped, by the sink's start (services/ringback/runtime/upgrades.py), not here: both views
-- fill while its rows are copied, so no key is missing from the new table once the old one is gone.

-- What analysts and billing jobs query first: exactly one row per event_id — the first copy that
-- arrived — whatever the merge state. event_time is when it happened (occurred_at), or when ringback
-- received it for the events whose vendor gives no time.
CREATE OR REPLACE VIEW ringback.events {on_cluster} AS
SELECT *, ifNull(occurred_at, received_at) AS event_time
FROM ringback.event_copies FINAL
-- Copies of an event share their partition, and the columns of the skip indexes (call_id, sid and
-- request_id are identity fields; app_id is the vendor's, or the tenant's for pushes without one), so
-- FINAL may merge partition by partition and trust the skip indexes as they are: no copy of an event
-- sits in a granule an index skipped while another copy of it matches. (Exact mode would widen a call
-- id lookup to every granule of the key ranges involved: 3 s instead of 0.05 s at 100 million events.)
-- The one exception: a tenant's app_id changed between two copies of a push that carries none; a query
-- by app_id then finds each copy under its own app.
SETTINGS do_not_merge_across_partitions_select_final = 1, use_skip_indexes_if_final_exact_mode = 0;

-- The name earlier versions gave the deduplicated view; the same rows as ringback.events.
CREATE OR REPLACE VIEW ringback.events_dedup {on_cluster} AS
SELECT * FROM ringback.events;
