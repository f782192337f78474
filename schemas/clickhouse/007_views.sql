-- Views for the questions analysts ask. All read ringback.events (exact at any merge state: one row per
-- event, its first arrival), so every number below stays exact under vendor resends and replays.
-- Days and hours are in the billing time zone (setting billing_timezone, Asia/Shanghai by default: China
-- days, as the vendors bill); hour_utc and day_utc are the same in UTC.

-- One row per SMS message (tenant, sid, number): its final status — the last receipt by the vendor's
-- time (ENROUTE then DELIVRD is delivered) — and every status it went through, in order.
CREATE OR REPLACE VIEW ringback.sms_messages {on_cluster} AS
SELECT
    tenant, sid, to_e164,
    any(app_id) AS app_id, any(carrier) AS carrier, any(region) AS region,
    argMax(status, (event_time, received_at)) AS final_status,
    argMax(vendor_code, (event_time, received_at)) AS final_code,
    min(event_time) AS first_report_at,
    max(event_time) AS last_report_at,
    count() AS reports,
    arrayMap(pair -> pair.2, arraySort(groupArray((event_time, status)))) AS statuses
FROM ringback.events
WHERE event_type = 'sms.delivery_report'
GROUP BY tenant, sid, to_e164;

-- One row per call, from every event about it — state pushes, the CDR, the recording, key presses —
-- with the same meaning whatever the source: started_at when the call began, answered_at when it was
-- connected (the called party answered: the caller's own leg answering, which click-to-call rings first,
-- is not), ended_at when it ended, duration_s the billed seconds,
-- billable_minutes the billed minutes (Tencent voice), status the outcome (the CDR's or the final status
-- push's, else the last state push's — a call still under way shows where it is; unknown when only a
-- recording or key press has arrived).
-- A call is (tenant, source family, call id): click-to-call callId, the CDR platform's requestid, the
-- Tencent voice callid. Its app is its CDR's (or final status push's), else any its events name.
CREATE OR REPLACE VIEW ringback.calls {on_cluster} AS
SELECT
    tenant, call_source, call_key, app_id, from_e164, to_e164, carrier, region,
    call_started_at AS started_at, call_answered_at AS answered_at, call_ended_at AS ended_at,
    billed_seconds AS duration_s, billed_minutes AS billable_minutes, billed_charge AS charge,
    outcome AS status, call_answered_at IS NOT NULL OR outcome = 'answered' AS answered,
    recording, keys_pressed, event_types, events
FROM
(
    SELECT
        tenant,
        if(startsWith(source, 'tencent.voice'), 'tencent.voice', source) AS call_source,
        ifNull(call_id, request_id) AS call_key,
        coalesce(anyIf(app_id, event_type IN ('call.cdr', 'voice.code_status', 'voice.prompt_status', 'voice.call_failure')),
                 any(app_id)) AS app_id,
        any(from_e164) AS from_e164,
        any(to_e164) AS to_e164,
        any(carrier) AS carrier,
        any(region) AS region,
        coalesce(min(started_at), min(caller_started_at), min(event_time)) AS call_started_at,
        coalesce(min(answered_at), minIf(toNullable(event_time), event_type = 'call.state' AND status = 'answered' AND ifNull(leg, '') != 'caller')) AS call_answered_at,
        coalesce(max(ended_at), maxIf(toNullable(event_time), event_type = 'call.state' AND status = 'ended')) AS call_ended_at,
        max(duration_s) AS billed_seconds,
        max(billable_minutes) AS billed_minutes,
        max(charge) AS billed_charge,
        if(countIf(event_type IN ('call.cdr', 'voice.code_status', 'voice.prompt_status', 'voice.call_failure')) > 0,
           argMaxIf(status, event_time, event_type IN ('call.cdr', 'voice.code_status', 'voice.prompt_status', 'voice.call_failure')),
           ifNull(nullIf(argMaxIf(status, event_time, event_type = 'call.state'), ''), 'unknown')) AS outcome,
        any(recording_url) AS recording,
        arrayMap(pair -> assumeNotNull(pair.2), arraySort(groupArrayIf((event_time, key_digits), key_digits IS NOT NULL))) AS keys_pressed,
        groupUniqArray(event_type) AS event_types,
        count() AS events
    FROM ringback.events
    WHERE event_type IN ('call.state', 'call.cdr', 'call.recording', 'call.key_press',
                         'voice.code_status', 'voice.prompt_status', 'voice.key_press', 'voice.call_failure')
      AND ifNull(call_id, request_id) IS NOT NULL
    GROUP BY tenant, call_source, call_key
);

-- Every CDR (two-way calls, voice codes, conference legs) with its billing values.
CREATE OR REPLACE VIEW ringback.cdrs {on_cluster} AS
SELECT tenant, app_id, event_type, source, request_id, call_id, conference_id, from_e164, to_e164, carrier, region,
       status, vendor_status, started_at, answered_at, ended_at, duration_s, billable_minutes, charge, currency,
       recording_url, custom_param, event_time, received_at, event_id
FROM ringback.events
WHERE event_type IN ('call.cdr', 'voice.code_cdr', 'conference.cdr');

-- SMS delivery per hour (of the first receipt), tenant, app, carrier and the final vendor code; day is
-- the hour's day, as daily_usage counts it.
CREATE OR REPLACE VIEW ringback.sms_delivery_hourly {on_cluster} AS
SELECT
    toStartOfHour(first_report_at, {billing_timezone}) AS hour, toDate(hour) AS day,
    toStartOfHour(first_report_at, 'UTC') AS hour_utc, toDate(hour_utc) AS day_utc,
    tenant, app_id, carrier, final_code AS vendor_code,
    count() AS messages,
    countIf(final_status = 'delivered') AS delivered,
    countIf(final_status = 'failed') AS failed,
    countIf(final_status = 'pending') AS pending,
    round(delivered / messages, 4) AS delivery_rate
FROM ringback.sms_messages
GROUP BY hour, day, hour_utc, day_utc, tenant, app_id, carrier, vendor_code;

-- Per day (billing time zone), tenant and app: calls (by the day they started), answered, ASR, ACD (mean billed
-- seconds of the answered calls whose duration the vendor gives), and what was billed (by the day of the billed event): billable minutes, billed
-- seconds, charge; and SMS messages (by the day of their first receipt).
CREATE OR REPLACE VIEW ringback.daily_usage {on_cluster} AS
SELECT
    day, tenant, app_id,
    sum(calls) AS calls,
    sum(answered_calls) AS answered,
    round(answered / nullIf(calls, 0), 4) AS asr,
    round(sum(answered_seconds) / nullIf(sum(answered_timed), 0), 1) AS acd_s,
    sum(billable_minutes) AS billable_minutes,
    sum(billed_seconds) AS billed_seconds,
    sum(charge) AS charge,
    sum(sms) AS sms
FROM
(
    SELECT toDate(started_at, {billing_timezone}) AS day, tenant, app_id, 1 AS calls, toUInt64(answered) AS answered_calls,
           if(answered, ifNull(duration_s, 0), 0) AS answered_seconds, toUInt64(answered AND duration_s IS NOT NULL) AS answered_timed,
           0 AS billable_minutes, 0 AS billed_seconds, toDecimal128(0, 6) AS charge, 0 AS sms
    FROM ringback.calls
    UNION ALL
    SELECT toDate(event_time, {billing_timezone}), tenant, app_id, 0, 0, 0, 0, ifNull(billable_minutes, 0), ifNull(duration_s, 0),
           toDecimal128(ifNull(charge, 0), 6), 0
    FROM ringback.events
    WHERE charge IS NOT NULL OR billable_minutes IS NOT NULL OR (duration_s IS NOT NULL AND event_type IN ('call.cdr', 'voice.code_cdr', 'conference.cdr'))
    UNION ALL
    SELECT toDate(first_report_at, {billing_timezone}), tenant, app_id, 0, 0, 0, 0, 0, 0, toDecimal128(0, 6), 1
    FROM ringback.sms_messages
)
GROUP BY day, tenant, app_id;

-- Today in the billing time zone and the instants it starts and ends (a 23- or 25-hour day where the zone
-- changes its clocks): what a dashboard or job compares times with, so that it never names the zone itself.
CREATE OR REPLACE VIEW ringback.billing_today {on_cluster} AS
SELECT {billing_timezone} AS billing_timezone,
       toDate(now(), {billing_timezone}) AS day,
       toDateTime(toDate(now(), {billing_timezone}), {billing_timezone}) AS starts_at,
       toDateTime(toDate(now(), {billing_timezone}) + 1, {billing_timezone}) AS ends_at;

-- Dead letters per hour of receipt, tenant, route and reason: requests, the different bodies among them
-- (the same unreadable body resent three times counts once here) and the reports that failed.
CREATE OR REPLACE VIEW ringback.dead_letters_by_reason {on_cluster} AS
SELECT
    toStartOfHour(received_at, {billing_timezone}) AS hour, toStartOfHour(received_at, 'UTC') AS hour_utc,
    tenant, route, failure_type,
    count() AS requests,
    uniqExact(body_sha256) AS distinct_bodies,
    sum(failed_reports) AS failed_reports
FROM ringback.dead_letters FINAL
GROUP BY hour, hour_utc, tenant, route, failure_type;

-- Every dead letter (one row per request, as ringback.dead_letters FINAL) and whether what failed has
-- been stored since: resolved_at is when the first event that settles it was inserted, resolved_by how —
-- 'resend' (an event of the same tenant and route, received at or after the dead letter, carries one of
-- its vendor ids: sid, call_id, request_id or conference_id, under the same name) or 'replay' (a
-- request that could not be read at all now has events under its own ingest id and receive time, as
-- `ringback replay` stores them). NULL: still open. A dead letter whose failed reports carry no vendor
-- id and whose request was partly stored can only be closed by hand.
CREATE OR REPLACE VIEW ringback.dead_letter_status {on_cluster} AS
WITH
    letters AS
    (
        SELECT route, ingest_id, report_index, tenant, received_at, failure_type, reason, failed_reports, ids
        FROM ringback.dead_letters FINAL
    ),
    wanted AS
    (
        SELECT route, ingest_id, report_index, tenant, received_at, kind, id
        FROM letters
        ARRAY JOIN mapKeys(ids) AS kind, mapValues(ids) AS values
        ARRAY JOIN values AS id
        WHERE kind IN ('sid', 'call_id', 'request_id', 'conference_id') AND id != ''
    ),
    by_ids AS
    (
        SELECT tenant, route, received_at, inserted_at, 'sid' AS kind, assumeNotNull(sid) AS id
        FROM ringback.event_copies WHERE sid IN (SELECT id FROM wanted WHERE kind = 'sid')
        UNION ALL
        SELECT tenant, route, received_at, inserted_at, 'call_id', assumeNotNull(call_id)
        FROM ringback.event_copies WHERE call_id IN (SELECT id FROM wanted WHERE kind = 'call_id')
        UNION ALL
        SELECT tenant, route, received_at, inserted_at, 'request_id', assumeNotNull(request_id)
        FROM ringback.event_copies WHERE request_id IN (SELECT id FROM wanted WHERE kind = 'request_id')
        UNION ALL
        SELECT tenant, route, received_at, inserted_at, 'conference_id', assumeNotNull(conference_id)
        FROM ringback.event_copies WHERE conference_id IN (SELECT id FROM wanted WHERE kind = 'conference_id')
    ),
    resolutions AS
    (
        SELECT w.route AS route, w.ingest_id AS ingest_id, w.report_index AS report_index,
               min(e.inserted_at) AS first_at, 'resend' AS how
        FROM wanted AS w
        INNER JOIN by_ids AS e ON e.tenant = w.tenant AND e.route = w.route AND e.kind = w.kind AND e.id = w.id
        WHERE e.received_at >= w.received_at
        GROUP BY route, ingest_id, report_index
        UNION ALL
        SELECT e.route, e.ingest_id, -1, min(e.inserted_at), 'replay'
        FROM ringback.event_copies AS e
        WHERE e.received_at IN (SELECT received_at FROM letters WHERE report_index = -1)
          AND (e.route, e.ingest_id, e.received_at) IN (SELECT route, ingest_id, received_at FROM letters WHERE report_index = -1)
        GROUP BY e.route, e.ingest_id
    )
SELECT l.route AS route, l.ingest_id AS ingest_id, l.report_index AS report_index, l.tenant AS tenant,
       l.received_at AS received_at, l.failure_type AS failure_type, l.reason AS reason,
       l.failed_reports AS failed_reports, l.ids AS ids,
       if(r.at = 0, NULL, toNullable(r.at)) AS resolved_at, nullIf(r.how, '') AS resolved_by
FROM letters AS l
LEFT JOIN
(
    SELECT route, ingest_id, report_index, min(first_at) AS at, argMin(how, first_at) AS how FROM resolutions
    GROUP BY route, ingest_id, report_index
) AS r ON r.route = l.route AND r.ingest_id = l.ingest_id AND r.report_index = l.report_index
-- On a cluster, dead letters and events are sharded apart: the subqueries are sent whole to every shard.
SETTINGS distributed_product_mode = 'global';
