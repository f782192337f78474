"""Reading ``ringback.normalized.v1`` from a billing job: decoded events, each one once, committed after use.

The topic, as the normalizer writes it:

- **value** — one normalized event in Avro single-object encoding: ``C3 01``, the writer schema's 8-byte
  CRC-64-AVRO fingerprint, the binary record (``schemas/normalized_event.avsc``).
- **key** — the ordering key ``<source>:<call_id | request_id | sid>`` (the first of the three the event
  has; its ``event_id`` when it has none). Every event of one call or one message, and every copy of
  one event, has the same key and therefore lands on the same partition, in the order published.
- **headers** — ``tenant`` (UTF-8), present only when the callback came in on a tenant URL; the event's
  ``tenant`` field says the same.
- **timestamp** — when the normalizer published it (not when the vendor called; that is ``received_at``).

What this package adds, with nothing of ringback's runtime but its Avro codec:

- **Decoding by fingerprint.** ``EventDecoder`` knows every writer schema in ``schemas/`` and
  ``schemas/history/`` and resolves each message to the job's reader schema (the current one unless
  given): a job on an older schema skips fields it does not know, a job on a newer one gets defaults
  for fields older messages lack. A message whose writer schema is not known stops the job
  (``UndecodableEvent``) rather than being skipped: add that schema's file, then run again.
- **The dedupe rule.** The same vendor report always has the same ``event_id``; it reaches the topic
  more than once when the vendor resends it or a replay after a crash publishes it again. The first
  copy seen wins; later copies are set aside as duplicates — or as *conflicts* when their billing
  values (charge, duration, billable minutes, status) differ from the first copy's. Ids are remembered
  for ``max_age`` of stream time (the newest ``received_at`` seen) and at most ``max_ids`` of them,
  whichever is shorter (``DedupeWindow``).
- **Commit after processing.** Each batch goes to the job's callback; its offsets are committed only
  after the callback returned. A callback that raises stops the consumer with nothing of that batch
  committed, so the batch comes again on the next run (at-least-once): the job's writes must be
  idempotent, or carry the offsets they cover (see ``examples/billing_job.py``).
- **Remembering across restarts.** When a partition is assigned, the consumer re-reads what precedes
  the committed offset within the window (by time and by count) to remember those ids, without
  handing them to the job: a resend arriving after a restart is still recognised.
- **A durable id store** (``state_dir``): the ids of first copies, kept in SQLite for the same window
  (``max_age`` of stream time, at most ``max_ids``), written after the job's callback returned and before
  the commit. Only this survives a broker that starts afresh — which is what the embedded broker does at
  every start of `ringback run` and every recycle: its topics begin again at offset 0, with no committed
  offsets and none of the old messages.
- **Broker incarnations.** The consumer asks the broker for its cluster id (the embedded broker gets a new
  one at every start) before it starts and after every fetch. When it changes, it never skips silently:
  it logs it, counts it (``Summary.incarnations``), commits nothing of the batch fetched meanwhile, and
  reads every partition of the new topic from its start, the id store setting aside what was billed
  before. ``Batch.incarnation`` tells the job which broker the offsets of a batch belong to: a job
  that keeps offsets of its own must keep them per incarnation (see ``examples/billing_job.py``).

The package, one idea a module: ``decoding`` (by fingerprint), ``delivery`` (what a job is handed),
``dedupe`` and ``durable_ids`` (the dedupe rule in memory and on disk), ``group`` (the billing
consumer), ``tail`` (reading without a group), ``kafka`` (the only module that speaks to aiokafka),
``times``.
"""

from __future__ import annotations

from ringback.consumer.decoding import DEFAULT_SCHEMAS_DIR, EventDecoder, UndecodableEvent
from ringback.consumer.dedupe import (
    BILLING_FIELDS,
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_IDS,
    DedupeWindow,
    Verdict,
    billing_values,
)
from ringback.consumer.delivery import (
    DEFAULT_TOPIC,
    TENANT_HEADER,
    Batch,
    Delivered,
    Process,
    Summary,
    delivered,
    json_ready,
)
from ringback.consumer.durable_ids import ID_STORE_SUFFIX, DurableIds, billing_digest
from ringback.consumer.group import DEFAULT_MAX_BATCH, START_POLICIES, NormalizedConsumer, consume
from ringback.consumer.kafka import INCARNATION_RETRY_S, POLL_TIMEOUT_MS, TOPIC_WAIT_S, TOPIC_WAIT_STEP_S
from ringback.consumer.tail import Start, read, read_records
from ringback.consumer.times import iso_utc, micros

__all__ = [
    "BILLING_FIELDS",
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_IDS",
    "DEFAULT_SCHEMAS_DIR",
    "DEFAULT_TOPIC",
    "ID_STORE_SUFFIX",
    "INCARNATION_RETRY_S",
    "POLL_TIMEOUT_MS",
    "START_POLICIES",
    "TENANT_HEADER",
    "TOPIC_WAIT_S",
    "TOPIC_WAIT_STEP_S",
    "Batch",
    "DedupeWindow",
    "Delivered",
    "DurableIds",
    "EventDecoder",
    "NormalizedConsumer",
    "Process",
    "Start",
    "Summary",
    "UndecodableEvent",
    "Verdict",
    "billing_digest",
    "billing_values",
    "consume",
    "delivered",
    "iso_utc",
    "json_ready",
    "micros",
    "read",
    "read_records",
]
