-- Which requests have something stored, by identity: every ingest id with at least one event or dead
-- letter, per route and hour of receipt. Filled by ClickHouse itself from each insert into the events and
-- dead_letters tables (before any merge collapses duplicates), so `ringback reconcile` can compare what
-- the edge acknowledged with what was stored without being fooled by replays, which inflate counts but
-- never add an ingest id.
CREATE TABLE IF NOT EXISTS ringback.ingests {on_cluster}
(
    hour        DateTime('UTC'),
    route       LowCardinality(String),
    ingest_id   String
)
ENGINE = ReplacingMergeTree
ORDER BY (hour, route, ingest_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS ringback.ingests_from_events {on_cluster} TO ringback.ingests AS
SELECT DISTINCT toStartOfHour(received_at) AS hour, route, ingest_id FROM ringback.events;

CREATE MATERIALIZED VIEW IF NOT EXISTS ringback.ingests_from_dead_letters {on_cluster} TO ringback.ingests AS
SELECT DISTINCT toStartOfHour(received_at) AS hour, route, ingest_id FROM ringback.dead_letters;
