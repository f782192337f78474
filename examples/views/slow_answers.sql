-- Answered calls that rang for longer than 20 seconds, newest first: who waited, on which app.
SELECT tenant, app_id, call_source, call_key, to_e164, carrier, started_at, answered_at,
       dateDiff('second', started_at, answered_at) AS ring_s
FROM ringback.calls
WHERE answered AND answered_at IS NOT NULL AND dateDiff('second', started_at, answered_at) > 20
ORDER BY answered_at DESC
