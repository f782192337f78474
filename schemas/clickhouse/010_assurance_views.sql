-- Revenue assurance: what the vendors never sent, and what they charged otherwise than the card says.
-- Read from ringback.events (exact under resends and replays); grace periods and the tolerance are the
-- settings cdr_grace_minutes, receipt_grace_hours and charge_tolerance, as the sink wrote them into
-- ringback.billing_settings at its last start.

-- Calls answered by their state or status pushes (CDR platform two-way calls, click-to-call) with no
-- CDR or hang-up record cdr_grace_minutes after the answer: revenue leakage or a vendor fault.
CREATE OR REPLACE VIEW ringback.missing_cdrs {on_cluster} AS
SELECT tenant, app_id, call_source AS source, call_key, answered_at,
       toUInt64(greatest(dateDiff('minute', answered_at, now64(6, 'UTC')), 0)) AS minutes_waiting
FROM ringback.calls
WHERE call_source IN ('cdr_push', 'callback_call')
  AND has(event_types, 'call.state')
  AND NOT has(event_types, 'call.cdr')
  AND answered_at IS NOT NULL
  AND answered_at < now64(6, 'UTC') - toIntervalSecond(toInt64(60 * (
        SELECT toFloat64OrZero(argMax(value, set_at)) FROM ringback.billing_settings WHERE name = 'cdr_grace_minutes')));

-- SMS whose last receipt (by the vendor's time) is not final (neither delivered nor failed)
-- receipt_grace_hours after it.
CREATE OR REPLACE VIEW ringback.stuck_messages {on_cluster} AS
SELECT tenant, app_id, sid, to_e164, final_code AS last_status, last_report_at AS last_receipt_at
FROM ringback.sms_messages
WHERE final_status NOT IN ('delivered', 'failed')
  AND last_report_at < now64(6, 'UTC') - toIntervalSecond(toInt64(3600 * (
        SELECT toFloat64OrZero(argMax(value, set_at)) FROM ringback.billing_settings WHERE name = 'receipt_grace_hours')));

-- Priced events whose vendor charge differs from the rated charge by more than charge_tolerance.
CREATE OR REPLACE VIEW ringback.charge_differences {on_cluster} AS
SELECT tenant, app_id, event_type, source, event_id, call_key, sid, event_time, day, rate_line, unit,
       rated_charge, vendor_charge, charge_difference, rate_currency
FROM ringback.rated_events
WHERE vendor_charge IS NOT NULL
  AND abs(charge_difference) > toDecimal128((
        SELECT toDecimal128OrZero(argMax(value, set_at), 6) FROM ringback.billing_settings WHERE name = 'charge_tolerance'), 6);
