-- Every event priced by the rate card in force (ringback.rates), read from ringback.events (one row per
-- event, its first arrival), so prices stay exact under resends and replays, and a new card re-rates by
-- query. Days are in the billing time zone (setting billing_timezone, Asia/Shanghai by default: China
-- days, as the vendors bill); day_utc is the same in UTC.
--
-- The line that prices an event: the most specific line for its event type (tenant and app, then app,
-- then tenant, then neither) whose valid_from is on or before the event's day; among lines of the same
-- key, the latest valid_from. unit = message prices a message (tenant, event type, sid, number) once,
-- at its first receipt by the vendor's time, however many receipts it gets; minute and second price
-- the billed seconds (the CDR's duration, else the vendor's billable minutes) in started increments of
-- increment_s; event prices each event. Events no line prices are not listed.
CREATE OR REPLACE VIEW ringback.rated_events {on_cluster} AS
SELECT
    event_id, tenant, app_id, event_type, source, route, sid, to_e164, call_key, event_time, received_at,
    toDate(event_time, {billing_timezone}) AS day, toDate(event_time, 'UTC') AS day_utc,
    chosen.1 AS rate_line, chosen.2 AS rate_tenant, chosen.3 AS rate_app_id, chosen.4 AS rate_valid_from,
    chosen.5 AS unit, chosen.6 AS price, chosen.7 AS rate_currency, chosen.8 AS increment_s,
    if(chosen.5 IN ('minute', 'second'), toUInt64(intDiv(seconds + chosen.8 - 1, chosen.8) * chosen.8), 0) AS billed_seconds,
    multiIf(chosen.5 = 'minute', toDecimal128(billed_seconds, 6) / 60,
            chosen.5 = 'second', toDecimal128(billed_seconds, 6),
            toDecimal128(1, 6)) AS units,
    toDecimal128(round(toDecimal128(chosen.6, 12) * multiIf(chosen.5 = 'minute', toDecimal128(billed_seconds, 12) / 60,
                                                            chosen.5 = 'second', toDecimal128(billed_seconds, 12),
                                                            toDecimal128(1, 12)), 6), 6) AS rated_charge,
    vendor_charge,
    rated_charge - toDecimal128(vendor_charge, 6) AS charge_difference,
    receipt_no
FROM
(
    SELECT
        e.event_id AS event_id, e.tenant AS tenant,
        any(e.app_id) AS app_id, any(e.event_type) AS event_type, any(e.source) AS source, any(e.route) AS route,
        any(e.sid) AS sid, any(e.to_e164) AS to_e164, any(ifNull(e.call_id, e.request_id)) AS call_key,
        any(e.event_time) AS event_time, any(e.received_at) AS received_at,
        any(toInt64(greatest(coalesce(e.duration_s, e.billable_minutes * 60, 0), 0))) AS seconds,
        any(e.charge) AS vendor_charge, any(e.receipt_no) AS receipt_no,
        argMax((r.line, r.tenant, r.app_id, r.valid_from, r.unit, r.price, r.currency, r.increment_s),
               ((r.tenant != '') + 2 * (r.app_id != ''), r.valid_from)) AS chosen
    FROM
    (
        SELECT *, row_number() OVER (PARTITION BY tenant, event_type, ifNull(sid, event_id), ifNull(to_e164, '')
                                     ORDER BY event_time, received_at, event_id) AS receipt_no
        FROM ringback.events
        WHERE event_type IN (SELECT event_type FROM ringback.rates)
    ) AS e
    INNER JOIN ringback.rates AS r ON e.event_type = r.event_type
    WHERE (r.tenant = '' OR r.tenant = e.tenant)
      AND (r.app_id = '' OR r.app_id = ifNull(e.app_id, ''))
      AND r.valid_from <= toDate(e.event_time, {billing_timezone})
    GROUP BY e.tenant, e.event_id
)
WHERE chosen.5 != 'message' OR receipt_no = 1;

-- Priced usage per tenant, app, day (billing time zone), event type and currency: priced events (messages for
-- message lines), units (messages, minutes, seconds or events), the rated charge and the vendor's own.
CREATE OR REPLACE VIEW ringback.rated_usage {on_cluster} AS
SELECT
    tenant, app_id, day, event_type, rate_currency AS currency,
    count() AS events,
    sum(units) AS units,
    sum(rated_charge) AS rated_charge,
    sum(vendor_charge) AS vendor_charge
FROM ringback.rated_events
GROUP BY tenant, app_id, day, event_type, currency;
