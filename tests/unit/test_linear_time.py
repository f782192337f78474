"""Every route reads hostile bodies, of every kind it receives, in time linear in their size, up to the
1 MB body limit.

The regression: the missing-comma repair backtracked quadratically on a body of escaped quotes
(1 s at 16 KB, ~65 s at 128 KB, about an hour at 1 MB) and froze the live normalizer. Times are CPU
times (``time.process_time``) through the worker's ``normalize_message``, so the whole adapter path
is covered; the scaling check is a ratio, so it holds on slow and fast machines alike.
"""

from __future__ import annotations

import gc
import os
import time
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringback.normalizer.adapters import registry
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.raw import RawCallback
from tests.conftest import REPO_ROOT
from tests.unit.hostile_bodies import ENVELOPES, SHAPES, VOICE_REPORTS, VOICE_ROUTES, Envelope

CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")
CTX = Context(blank_event=CODEC.blank_event())
ROUTES = sorted(registry())

SMALL, LARGE = 128 * 1024, 1024 * 1024  # LARGE: the default max_body_bytes
# Linear time gives LARGE/SMALL = 8x, measured 8-14x (a 1 MB body's allocations and cache misses cost
# more per byte); quadratic would give 64x. 30x, with the best of a few runs of each, leaves room for a
# machine busy with other processes and still catches quadratic reading.
MAX_GROWTH = 30
RUNS = 3
CEILING_S = 3.0  # a backstop only: these take well under a second on the reference machine
CLOCK_NOISE_S = 0.002  # below this a timing says nothing about growth


def cpu_seconds(route: str, body: bytes) -> float:
    raw = RawCallback(
        route=route,
        ingest_id="hostile",
        received_at_us=1_763_700_000_000_000,
        remote_addr="",
        content_type="",
        body=body,
    )
    gc.disable()  # a collection's cost depends on the whole heap, not on this body
    try:
        started = time.process_time()
        outcomes = normalize_message(raw, registry(), CTX)
        elapsed = time.process_time() - started
    finally:
        gc.enable()
    assert outcomes
    assert not any(isinstance(o, Rejection) and o.reason_type == "internal_error" for o in outcomes), outcomes
    return elapsed


def growth(route: str, small: bytes, large: bytes) -> tuple[float, float]:
    """(the large body's time, its growth over the small one's, per byte, in units of LARGE/SMALL)."""
    small_s = min(cpu_seconds(route, small) for _ in range(RUNS))
    large_s = min(cpu_seconds(route, large) for _ in range(RUNS))
    per_byte = (large_s / len(large)) / (max(small_s, CLOCK_NOISE_S) / len(small))
    return large_s, per_byte * LARGE / SMALL


def test_every_route_and_every_voice_body_has_an_envelope() -> None:
    from ringback.normalizer.adapters.tencent_voice_status import BODIES

    assert {envelope.route for envelope in ENVELOPES} == set(ROUTES)
    assert set(VOICE_REPORTS) == set(BODIES)
    assert {(envelope.route, envelope.prefix) for envelope in ENVELOPES if envelope.route in VOICE_ROUTES} == {
        (route, b'{"' + wrapper.encode() + b'":') for route in VOICE_ROUTES for wrapper in BODIES
    }


def test_every_envelope_holds_a_readable_report() -> None:
    for envelope in ENVELOPES:
        raw = RawCallback(
            route=envelope.route,
            ingest_id="e",
            received_at_us=1_763_700_000_000_000,
            remote_addr="",
            content_type="",
            body=envelope.one_object(envelope.members()),
        )
        assert not any(isinstance(o, Rejection) for o in normalize_message(raw, registry(), CTX)), envelope.name


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("envelope", ENVELOPES, ids=lambda envelope: envelope.name)
def test_a_hostile_body_takes_time_linear_in_its_size(envelope: Envelope, shape: str) -> None:
    route = envelope.route
    small, large = SHAPES[shape](envelope, SMALL), SHAPES[shape](envelope, LARGE)
    large_s, grown = growth(route, small, large)
    if grown > MAX_GROWTH or large_s > CEILING_S:
        large_s, grown = min((large_s, grown), growth(route, small, large))  # once more: the machine may have been busy
    assert grown <= MAX_GROWTH, (
        f"{shape} in {envelope.name}: {len(small)} B -> {len(large)} B took {grown:.1f}x as long"
    )
    assert large_s < CEILING_S, f"{shape} in {envelope.name}: {large_s:.2f} s for {len(large)} bytes"


# Pieces that stress a reader: quotes, escapes, colons, brackets, whitespace beside quotes, keys.
HEADS = [b"", b'"', b'{"k":"', b'{"k":"v" "', b'[{" k', b"[" * 70]
FRAGMENTS = [
    b'"',
    b'\\"',
    b"\\",
    b"\\\\",
    b":",
    b'"k":',
    b'"v"',
    b'"k" :',
    b'" k ":',
    b'"K":',
    b" ",
    b"\t",
    b"\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b"1",
    b"-1",
    b"0.5",
    b"a",
    "应答".encode(),
]
SIZES = [256, 16 * 1024, 256 * 1024]
# A quadratic step needed a second at 16 KB; reading 256 KB in linear time takes tens of milliseconds.
PER_BODY_BUDGET = timedelta(seconds=1)


@settings(
    max_examples=int(os.environ.get("RINGBACK_PROPERTY_EXAMPLES", "150")),
    deadline=PER_BODY_BUDGET,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    envelope=st.sampled_from(ENVELOPES),
    enveloped=st.booleans(),
    head=st.sampled_from(HEADS),
    pieces=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=16),
    size=st.sampled_from(SIZES),
)
def test_any_body_of_hostile_pieces_is_read_within_its_budget(
    envelope: Envelope, enveloped: bool, head: bytes, pieces: list[bytes], size: int
) -> None:
    unit = b"".join(pieces)
    body = (envelope.opening() if enveloped else b"") + head + unit * (size // len(unit) + 1)
    cpu_seconds(envelope.route, body)
