"""Ingest ids: the ULID layout (48-bit milliseconds, 80 random bits, Crockford base32), time-ordered."""

from __future__ import annotations

import random

import pytest

from ringback.runtime import raw

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def reference(ms: int, random_bits: int) -> str:
    """The layout spelled out, one 5-bit character at a time, most significant first."""
    value = (ms << 80) | random_bits
    return "".join(CROCKFORD[(value >> (5 * (25 - i))) & 31] for i in range(26))


@pytest.mark.parametrize("seed", range(5))
def test_an_id_is_the_ulid_of_its_time_and_random_bits(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    chance = random.Random(seed)
    for _ in range(2000):
        ms, bits = chance.randrange(1 << 48), chance.getrandbits(80)
        monkeypatch.setattr(raw.os, "urandom", lambda n, bits=bits: bits.to_bytes(n, "big"))
        assert raw.new_ingest_id(ms) == reference(ms, bits)


def test_known_ids_and_their_order() -> None:
    assert reference(0, 0) == "0" * 26
    assert reference((1 << 48) - 1, (1 << 80) - 1) == "7" + "Z" * 25
    ids = [raw.new_ingest_id(ms) for ms in (1, 2, 1_733_000_000_000, 1_733_000_000_001, (1 << 48) - 1)]
    assert ids == sorted(ids) and all(len(i) == 26 and set(i) <= set(CROCKFORD) for i in ids)
    assert len({raw.new_ingest_id(5) for _ in range(1000)}) == 1000  # the random bits tell apart one millisecond
