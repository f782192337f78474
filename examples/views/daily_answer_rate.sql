-- Per China day and app: calls, answered, answer-seizure ratio and average call duration, read from the
-- saved view's neighbour ringback.daily_usage (a saved view may read any ringback view, and other saved views).
SELECT day, tenant, app_id, calls, answered, asr, acd_s
FROM ringback.daily_usage
ORDER BY day DESC, calls DESC
