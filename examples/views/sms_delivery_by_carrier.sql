-- SMS delivery per China day and carrier: messages sent (one per sid and number), delivered, failed,
-- still pending, and the delivery rate; exact under resends and replays (it reads ringback.sms_messages).
SELECT
    toDate(first_report_at, 'Asia/Shanghai') AS day,
    tenant,
    carrier,
    count() AS sent,
    countIf(final_status = 'delivered') AS delivered,
    countIf(final_status = 'failed') AS failed,
    countIf(final_status = 'pending') AS pending,
    round(delivered / sent, 4) AS delivery_rate
FROM ringback.sms_messages
GROUP BY day, tenant, carrier
