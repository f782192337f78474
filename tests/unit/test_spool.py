"""The edge spool on real files: durable appends, ordered reads, crash recovery, the byte bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringback.edge.spool import CURSOR_FILE, SEGMENT_SUFFIX, Spool, SpoolFull
from ringback.runtime.raw import RawCallback


def payloads(n: int, start: int = 0) -> list[bytes]:
    return [f"callback-{i}".encode() * 3 for i in range(start, start + n)]


def test_append_read_acknowledge_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append(payloads(3))
    spool.append(payloads(2, start=3))
    assert spool.pending_records == 5
    first, position = spool.read(limit=4)
    assert first == payloads(4)
    spool.acknowledge(position, len(first))
    rest, position = spool.read(limit=10)
    assert rest == payloads(1, start=4)
    spool.acknowledge(position, len(rest))
    assert not spool.has_pending and spool.pending_bytes == 0


def test_pending_records_survive_a_restart_and_delivered_ones_do_not_come_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append(payloads(6))
    done, position = spool.read(limit=2)
    spool.acknowledge(position, 2)
    spool.close()  # the process dies here
    reopened = Spool(tmp_path, max_bytes=1_000_000)
    assert reopened.pending_records == 4
    assert reopened.read(limit=10)[0] == payloads(4, start=2)


def test_a_torn_tail_is_cut_at_the_last_whole_frame(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append(payloads(3))
    spool.close()
    (segment,) = tmp_path.glob(f"*{SEGMENT_SUFFIX}")
    with open(segment, "ab") as handle:
        handle.write(b"\xa7\x00\x00\x01\x00garbage")  # a crash in the middle of the next append
    reopened = Spool(tmp_path, max_bytes=1_000_000)
    assert reopened.read(limit=10)[0] == payloads(3)
    reopened.append(payloads(1, start=3))  # and appending continues cleanly after the cut
    assert reopened.read(limit=10)[0] == payloads(4)


def test_a_corrupted_frame_ends_the_readable_log(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append(payloads(3))
    spool.close()
    (segment,) = tmp_path.glob(f"*{SEGMENT_SUFFIX}")
    data = bytearray(segment.read_bytes())
    data[-2] ^= 0xFF  # flip a byte inside the last frame's payload
    segment.write_bytes(bytes(data))
    assert Spool(tmp_path, max_bytes=1_000_000).read(limit=10)[0] == payloads(2)


def test_the_bound_refuses_instead_of_growing(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=200)
    spool.append(payloads(3))
    with pytest.raises(SpoolFull):
        spool.append(payloads(10))
    assert spool.pending_records == 3
    records, position = spool.read(limit=3)
    spool.acknowledge(position, 3)
    spool.append(payloads(3))  # room again once delivered


def test_segments_roll_over_and_delivered_segments_are_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000, segment_bytes=100)
    for i in range(20):
        spool.append(payloads(1, start=i))
    assert len(list(tmp_path.glob(f"*{SEGMENT_SUFFIX}"))) > 5
    records, position = spool.read(limit=20)
    assert records == payloads(20)
    spool.acknowledge(position, 20)
    assert len(list(tmp_path.glob(f"*{SEGMENT_SUFFIX}"))) == 1  # only the one still being written
    assert (tmp_path / CURSOR_FILE).exists()
    spool.close()
    reopened = Spool(tmp_path, max_bytes=1_000_000, segment_bytes=100)
    assert not reopened.has_pending
    reopened.append(payloads(1, start=99))
    assert reopened.read(limit=5)[0] == payloads(1, start=99)


def test_raw_callback_round_trips_through_its_spool_form() -> None:
    raw = RawCallback(route="cdr-push", ingest_id="01ABC", received_at_us=123, remote_addr="10.0.0.1", content_type='application/json; x="\x1f"', body=b'{"cdr":[]}\x00\xff')
    assert RawCallback.from_bytes(raw.to_bytes()) == raw
