"""Runs ringback's hot paths over a fixed sample and prints one digest of everything they produced, and
which way the hot modules ran (``python -m tests.compiled_probe``; see tests/unit/test_compiled.py)."""

from __future__ import annotations

import hashlib
import random

from ringback import compiled
from ringback.normalizer.adapters import registry
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.avro_container import container_header
from ringback.runtime.raw import RawCallback
from ringback.sink.placement import Placement, with_stored_time
from ringback.tools.loadgen import DEFAULT_MIX, TrafficMaker
from tests import golden
from tests.conftest import REPO_ROOT

SAMPLE = 3000
RECEIVED_AT_US = 1_765_000_000_000_000


def raws() -> list[RawCallback]:
    ticks = iter(range(10**9))
    maker = TrafficMaker("probe", dict(DEFAULT_MIX), seed=7, clock=lambda: 1_765_000_000 + next(ticks) * 0.01)
    shuffle = random.Random(7)
    found = [golden.raw_for(case) for case in golden.cases()]
    for n in range(SAMPLE):
        made = maker.next()
        body = bytearray(made.body)
        if n % 10 == 0 and body:  # hostile: a byte changed, so repairs and refusals are compared too
            body[shuffle.randrange(len(body))] = shuffle.randrange(256)
        found.append(
            RawCallback(made.route, f"probe{n:021d}", RECEIVED_AT_US + n, "127.0.0.1", "application/json", bytes(body))
        )
    return found


def digest() -> tuple[str, int]:
    codec = EventCodec.from_dir(REPO_ROOT / "schemas")
    ctx = Context(blank_event=codec.blank_event())
    placement = Placement(codec)
    out = hashlib.sha256()
    items = 0
    payloads = []
    for raw in raws():
        copy = RawCallback.from_bytes(raw.to_bytes())
        out.update(repr(copy == raw).encode())
        for outcome in normalize_message(raw, registry(), ctx):
            items += 1
            if isinstance(outcome, Rejection):
                out.update(repr((outcome.reason_type, outcome.report_index, outcome.message)).encode())
                continue
            outcome["normalizer_version"] = "probe"
            payload = codec.encode(outcome)
            payloads.append(payload)
            out.update(payload)
            placed = placement.read(payload)
            out.update(repr(placed).encode() + with_stored_time(payload, placed.occurred_at_us))
    schema_json, _ = placement.container_schema(codec.writer_of(payloads[0]))
    out.update(container_header(schema_json, b"\x00" * 16))
    return out.hexdigest(), items


if __name__ == "__main__":
    hexdigest, count = digest()
    print(compiled.mode, count, hexdigest)
