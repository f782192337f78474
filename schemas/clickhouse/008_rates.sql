-- Rate cards, as data: the sink loads its rates file (rates_file) as one card — its lines, then a row in
-- rate_cards naming it — so a card is in force only once all of its lines are stored, and every card
-- ever loaded stays, so each price used stays explainable. ringback.rates is the card in force.
CREATE TABLE IF NOT EXISTS ringback.rate_lines {on_cluster}
(
    card_version    DateTime64(6, 'UTC'),
    line            UInt32,
    tenant          LowCardinality(String),
    app_id          String,
    event_type      LowCardinality(String),
    unit            LowCardinality(String),
    price           Decimal(18, 6),
    currency        LowCardinality(String),
    increment_s     UInt32,
    valid_from      Date
)
ENGINE = MergeTree
ORDER BY (card_version, line);

CREATE TABLE IF NOT EXISTS ringback.rate_cards {on_cluster}
(
    card_version    DateTime64(6, 'UTC'),
    lines           UInt32,
    file            String,
    sha256          String
)
ENGINE = MergeTree
ORDER BY card_version;

CREATE OR REPLACE VIEW ringback.rates {on_cluster} AS
SELECT line, tenant, app_id, event_type, unit, price, currency, increment_s, valid_from, card_version
FROM ringback.rate_lines
WHERE card_version = (SELECT max(card_version) FROM ringback.rate_cards);

-- The settings the revenue-assurance views read (cdr_grace_minutes, receipt_grace_hours,
-- charge_tolerance), written by the sink at every start: the latest value of each name is in force.
CREATE TABLE IF NOT EXISTS ringback.billing_settings {on_cluster}
(
    name            LowCardinality(String),
    value           String,
    set_at          DateTime64(6, 'UTC')
)
ENGINE = MergeTree
ORDER BY (name, set_at);
