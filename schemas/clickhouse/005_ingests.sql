-- Which requests have something stored, by identity: every ingest id with at least one event or dead
-- letter, per route and hour of receipt. Filled by ClickHouse itself from each insert into the events and
-- dead_letters tables (before any merge collapses duplicates), so `ringback reconcile` can compare what
-- the edge acknowledged with what was stored without being fooled by replays, which inflate counts but
-- never add an ingest id.
CREATE TABLE IF NOT EXISTS ringback.ingests {on_cluster}
(
    hour        DateTime('UTC'),
    route       LowCardinality(String),
    ingest_id   String,
    tenant      LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (hour, route, ingest_id);
ALTER TABLE ringback.ingests {on_cluster} ADD COLUMN IF NOT EXISTS tenant LowCardinality(String);

-- A new version of a view is created before the older ones are dropped, so no insert in between goes
-- unrecorded; one recorded twice collapses.
CREATE MATERIALIZED VIEW IF NOT EXISTS ringback.ingests_from_event_copies {on_cluster} TO ringback.ingests AS
SELECT DISTINCT toStartOfHour(received_at) AS hour, route, ingest_id, tenant FROM ringback.event_copies;

CREATE MATERIALIZED VIEW IF NOT EXISTS ringback.ingests_from_dead_letters_v2 {on_cluster} TO ringback.ingests AS
SELECT DISTINCT toStartOfHour(received_at) AS hour, route, ingest_id, tenant FROM ringback.dead_letters;

DROP VIEW IF EXISTS ringback.ingests_from_events {on_cluster};
DROP VIEW IF EXISTS ringback.ingests_from_events_v2 {on_cluster};
DROP VIEW IF EXISTS ringback.ingests_from_dead_letters {on_cluster};
