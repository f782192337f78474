"""Where a worker's time goes, per record: each step timed alone, in this process, on the same
records the stage just measured; what the steps do not explain is the broker client and the loop.

This is the profile behind the bench's ratios, kept in every report so that a number that moves can
be traced to the step that moved it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ringback.normalizer.adapters import registry
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import HEADER_LENGTH, EventCodec
from ringback.runtime.avro_container import container
from ringback.runtime.raw import RawCallback


def _micros_each(step: Callable[[], Any], count: int) -> float:
    started = time.perf_counter()
    step()
    return round((time.perf_counter() - started) / max(1, count) * 1e6, 1)


def normalizer(raws: list[RawCallback], codec: EventCodec, measured_us_per_msg: float) -> dict[str, float]:
    """µs per raw message: reading the Kafka record into a callback, the adapters (JSON and fields),
    Avro encoding, and the rest (consuming, publishing, acks, commits)."""
    messages = [(raw.body, raw.headers()) for raw in raws]
    ctx, adapters = Context(blank_event=codec.blank_event()), registry()
    read: list[RawCallback] = []
    normalized: list[Any] = []
    read_us = _micros_each(
        lambda: read.extend(
            RawCallback.from_message("t", 0, i, body, headers) for i, (body, headers) in enumerate(messages)
        ),
        len(raws),
    )
    adapt_us = _micros_each(lambda: normalized.extend(normalize_message(raw, adapters, ctx) for raw in read), len(raws))
    events = [o for outcomes in normalized for o in outcomes if not isinstance(o, Rejection)]
    encode_us = _micros_each(lambda: [codec.encode(event) for event in events], len(raws))
    return {
        "read_us_per_msg": read_us,
        "adapters_us_per_msg": adapt_us,
        "avro_encode_us_per_msg": encode_us,
        "broker_client_and_loop_us_per_msg": round(max(0.0, measured_us_per_msg - read_us - adapt_us - encode_us), 1),
        "measured_us_per_msg": round(measured_us_per_msg, 1),
        "events_per_msg": round(len(events) / max(1, len(raws)), 2),
    }


def sink(payloads: list[bytes], codec: EventCodec, insert_s: float, measured_us_per_row: float) -> dict[str, float]:
    """µs per row: the ledger's read of route and receive time, the container file, ClickHouse's own
    insert (parse and write, on its thread, overlapping the next batch's reading), and the rest
    (fetching, batching, committing, and waiting for an insert that outlasts the next batch)."""
    keys_us = _micros_each(lambda: [codec.route_and_received_at(p) for p in payloads], len(payloads))
    schema_json = codec.writer_json[codec.header[2:]]
    container_us = _micros_each(lambda: container(schema_json, (p[HEADER_LENGTH:] for p in payloads)), len(payloads))
    python_us = keys_us + container_us
    return {
        "ledger_keys_us_per_row": keys_us,
        "container_us_per_row": container_us,
        "clickhouse_insert_us_per_row": round(insert_s / max(1, len(payloads)) * 1e6, 1),
        "fetch_loop_and_insert_waits_us_per_row": round(max(0.0, measured_us_per_row - python_us), 1),
        "measured_us_per_row": round(measured_us_per_row, 1),
    }
