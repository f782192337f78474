"""The sink's placement read of each normalized body's front: what a full decode says, or AvroDecodeError."""

from __future__ import annotations

import random

from ringback.config import Settings
from ringback.runtime.avro import AvroDecodeError, EventCodec
from ringback.sink.placement import Placed, Placement, micros
from ringback.tools.bench.worker_stages import normalized_events, raw_callbacks


def _decoded(codec: EventCodec, payload: bytes) -> Placed:
    event = codec.decode(payload)
    return Placed(
        event["route"], event["event_id"], micros(event["received_at"]) or 0, micros(event.get("occurred_at"))
    )


def test_the_placement_read_agrees_with_a_full_decode() -> None:
    codec = EventCodec.from_dir(Settings().schemas_dir)
    events = normalized_events(raw_callbacks(400, "placement"), codec)
    long_id = {**events[0], "event_id": "é" * 200, "route": "r" * 70, "occurred_at": None}  # multi-byte lengths
    payloads = [codec.encode(e) for e in [*events, long_id]]
    placement = Placement(codec)
    for payload in payloads:
        assert placement.read(payload) == _decoded(codec, payload)


def test_a_broken_body_is_an_avro_decode_error() -> None:
    codec = EventCodec.from_dir(Settings().schemas_dir)
    payloads = [codec.encode(e) for e in normalized_events(raw_callbacks(200, "broken"), codec)]
    placement = Placement(codec)
    rng = random.Random(7)
    refused = 0
    for payload in payloads:
        broken = bytearray(payload)
        for _ in range(3):
            broken[rng.randint(10, 60)] = rng.randint(0, 255)
        for body in (payload[: rng.randint(10, 40)], bytes(broken)):
            try:
                placement.read(body)
            except AvroDecodeError:
                refused += 1
    assert refused > len(payloads) // 2
