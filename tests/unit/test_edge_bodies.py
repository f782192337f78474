"""Body decoding and the in-flight budget, in isolation: bounded output, corrupt input named, shares kept."""

from __future__ import annotations

import gzip
import zlib

import pytest

from ringback.edge import bodies, in_flight
from ringback.edge.bodies import CorruptBody, decoder_for
from ringback.edge.in_flight import InFlight, Lease

TEXT = b'{"cdr":[{"requestid":"R-1","oriamount":"0.06"}]}' * 40
LIMIT = 1024 * 1024


def zstd_compress(data: bytes) -> bytes:
    try:
        from compression import zstd as module  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from backports import zstd as module  # type: ignore[import-not-found,no-redef,unused-ignore]
    return bytes(module.compress(data))


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


ENCODED = {
    "gzip": gzip.compress(TEXT),
    "x-gzip": gzip.compress(TEXT),
    "deflate": zlib.compress(TEXT),
    "zstd": zstd_compress(TEXT),
}


def decode_in_pieces(encoding: str, data: bytes, piece: int = 7, limit: int = LIMIT) -> bytes:
    decoder = decoder_for(encoding)
    assert decoder is not None
    out = b"".join(decoder.decode(data[i : i + piece], limit) for i in range(0, len(data), piece))
    decoder.finish()
    return out


@pytest.mark.parametrize("encoding", sorted(ENCODED))
def test_each_encoding_decodes_whatever_the_pieces(encoding: str) -> None:
    for piece in (1, 7, 4096):
        assert decode_in_pieces(encoding, ENCODED[encoding], piece) == TEXT


def test_raw_deflate_and_several_gzip_members_decode() -> None:
    assert decode_in_pieces("deflate", raw_deflate(TEXT)) == TEXT
    assert decode_in_pieces("gzip", gzip.compress(TEXT) + gzip.compress(b"tail")) == TEXT + b"tail"
    assert decode_in_pieces("zstd", zstd_compress(TEXT) + zstd_compress(b"tail")) == TEXT + b"tail"


@pytest.mark.parametrize("encoding", sorted(ENCODED))
def test_a_corrupt_or_cut_short_body_is_named_corrupt(encoding: str) -> None:
    good = ENCODED[encoding]
    at = 4 if encoding == "zstd" else len(good) - 1  # the frame header; the checksum of gzip and zlib
    flipped = good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1 :]
    for bad in (b"this is not compressed at all", flipped, good[: len(good) // 2]):
        with pytest.raises(CorruptBody):
            decode_in_pieces(encoding, bad)


@pytest.mark.parametrize("encoding", sorted(ENCODED))
def test_a_zip_bomb_stops_just_past_the_limit(encoding: str) -> None:
    zeros = b"\0" * (64 * 1024 * 1024)
    bomb = {"zstd": zstd_compress, "deflate": zlib.compress}.get(encoding, gzip.compress)(zeros)
    del zeros
    assert len(bomb) < 200_000
    decoder = decoder_for(encoding)
    assert decoder is not None
    out = decoder.decode(bomb, 1000)
    assert len(out) == 1001  # one byte past the room: too large, and nothing more was expanded


@pytest.mark.parametrize("encoding", ["br", "compress", "gzip, gzip", "x-unknown", "identity, gzip"])
def test_an_encoding_the_edge_does_not_decode_is_415(encoding: str) -> None:
    with pytest.raises(bodies.BodyRefused) as refused:
        decoder_for(encoding)
    assert refused.value.status == 415 and refused.value.outcome == bodies.UNSUPPORTED_ENCODING


def test_no_encoding_needs_no_decoder() -> None:
    assert decoder_for("") is None and decoder_for("identity") is None


def budget(limit: int = 100, byte_limit: int = 1000, share: float = 0.25) -> InFlight:
    return InFlight(limit, byte_limit, share)


def test_bytes_are_counted_as_they_are_held_not_as_announced() -> None:
    edge = budget()
    leases = [edge.enter(f"10.0.0.{i}") for i in range(20)]  # twenty requests that hold nothing yet
    assert all(isinstance(lease, Lease) for lease in leases) and edge.bytes == 0
    first = leases[0]
    assert isinstance(first, Lease) and first.hold(90) is None and edge.bytes == 90
    assert first.hold(40) is None and edge.bytes == 40  # decoded, the compressed bytes let go
    for lease in leases:
        assert isinstance(lease, Lease)
        lease.release()
        lease.release()  # once only
    assert edge.count == 0 and edge.bytes == 0 and edge.address_count() == 0


def test_one_address_cannot_take_the_whole_budget() -> None:
    edge = budget()
    mine = [edge.enter("203.0.113.9") for _ in range(25)]
    assert all(isinstance(lease, Lease) for lease in mine)
    assert edge.enter("203.0.113.9") == in_flight.ADDRESS_REQUESTS  # a quarter of 100 requests
    other = edge.enter("198.51.100.7")
    assert isinstance(other, Lease)
    first, second, third = mine[:3]
    assert isinstance(first, Lease) and isinstance(second, Lease) and isinstance(third, Lease)
    assert first.hold(100) is None and second.hold(100) is None  # a quarter of 1000 bytes is 250
    assert third.hold(51) == in_flight.ADDRESS_BYTES and third.bytes == 0
    assert other.hold(100) is None
    assert edge.shedding(5.0)[0] == [in_flight.ADDRESS_BYTES, in_flight.ADDRESS_REQUESTS]


def test_the_whole_edge_full_sheds_and_the_only_request_always_fits() -> None:
    edge = budget(byte_limit=250, share=0.5)
    alone = edge.enter("a")
    assert isinstance(alone, Lease) and alone.hold(400) is None  # more than the budget and the share, but alone
    alone.release()
    edge = budget(byte_limit=250, share=1.0)
    alone = edge.enter("a")
    assert isinstance(alone, Lease) and alone.hold(400) is None
    alone.release()
    one, two = edge.enter("a"), edge.enter("b")
    assert isinstance(one, Lease) and isinstance(two, Lease)
    assert one.hold(200) is None and two.hold(100) == in_flight.BYTES
    reasons, last = edge.shedding(5.0)
    assert reasons == [in_flight.BYTES] and last is not None and last < 5.0
    assert edge.shedding(0.0)[0] == []  # past the hold, the shedding is over
