"""The raw-topic message: headers and the spool's frame carry the tenant, and old frames still read."""

from __future__ import annotations

import struct

import orjson

from ringback.runtime.dead_letter import WHOLE_REQUEST, DeadLetter, Failure
from ringback.runtime.raw import H_TENANT, RawCallback

RAW = RawCallback(
    route="cdr-push",
    ingest_id="01ABC",
    received_at_us=1_763_700_000_000_000,
    remote_addr="10.0.0.1",
    content_type="application/json",
    body=b'{"cdr":[]}',
)


def test_without_a_tenant_no_header_is_written() -> None:
    assert H_TENANT not in dict(RAW.headers())
    assert RawCallback.from_message("t", 0, 1, RAW.body, RAW.headers()).tenant == ""


def test_the_tenant_travels_in_a_header() -> None:
    raw = RAW.replace(tenant="acme")
    assert dict(raw.headers())[H_TENANT] == b"acme"
    assert RawCallback.from_message("t", 0, 1, raw.body, raw.headers()).tenant == "acme"


def test_the_dead_letter_keeps_the_tenant() -> None:
    raw = RAW.replace(tenant="acme")
    letter = DeadLetter.of(raw, [Failure(WHOLE_REQUEST, "invalid_json", "x")], 0, "0")
    assert DeadLetter.from_message(raw.body, letter.headers()).raw.tenant == "acme"


def test_spool_frames_round_trip_with_and_without_a_tenant() -> None:
    for tenant in ("", "acme"):
        raw = RAW.replace(tenant=tenant)
        assert RawCallback.from_bytes(raw.to_bytes()) == raw


def test_a_frame_spooled_before_tenants_existed_is_read() -> None:
    header = orjson.dumps([RAW.route, RAW.ingest_id, RAW.received_at_us, RAW.remote_addr, RAW.content_type])
    old_frame = struct.pack(">I", len(header)) + header + RAW.body
    assert RAW.to_bytes() == old_frame  # no tenant: the very same bytes as before
    assert RawCallback.from_bytes(old_frame) == RAW
