"""The edge journal on real files: durable appends, reads from any position, trims, crash recovery, the bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringback.edge.journal import CURSOR_FILE, SEGMENT_SUFFIX, Journal, JournalFull, Position
from ringback.runtime.raw import RawCallback


def payloads(n: int, start: int = 0) -> list[bytes]:
    return [f"callback-{i}".encode() * 3 for i in range(start, start + n)]


def test_append_read_trim_in_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_bytes=1_000_000)
    journal.append(payloads(3))
    end = journal.append(payloads(2, start=3))
    assert journal.untrimmed_records == 5 and journal.end == end
    first, position = journal.read(journal.trimmed, limit=4)
    assert first == payloads(4)
    journal.trim(position, len(first))
    rest, position = journal.read(journal.trimmed, limit=10)
    assert rest == payloads(1, start=4) and position == end
    journal.trim(position, len(rest))
    assert journal.is_empty and journal.untrimmed_bytes == 0


def test_reading_ahead_of_the_trim_position_lets_go_of_nothing(tmp_path: Path) -> None:
    """The publisher reads ahead; what it read stays until the owner trims it (journal mode)."""
    journal = Journal(tmp_path, max_bytes=1_000_000)
    journal.append(payloads(6))
    _, published = journal.read(journal.trimmed, limit=4)
    later, _ = journal.read(published, limit=10)
    assert later == payloads(2, start=4)
    assert journal.untrimmed_records == 6
    journal.close()  # the process dies before anything was known to be stored
    reopened = Journal(tmp_path, max_bytes=1_000_000)
    assert reopened.untrimmed_records == 6
    assert reopened.read(reopened.trimmed, limit=10)[0] == payloads(6)  # a start publishes all of it again


def test_trimmed_records_do_not_come_back_after_a_restart(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_bytes=1_000_000)
    journal.append(payloads(6))
    _, position = journal.read(journal.trimmed, limit=2)
    journal.trim(position, 2)
    journal.close()
    reopened = Journal(tmp_path, max_bytes=1_000_000)
    assert reopened.untrimmed_records == 4
    assert reopened.read(Position(0, 0), limit=10)[0] == payloads(4, start=2)  # never before the trim position
    assert reopened.first_untrimmed() == payloads(1, start=2)[0]


def test_a_torn_tail_is_cut_at_the_last_whole_frame(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_bytes=1_000_000)
    journal.append(payloads(3))
    journal.close()
    (segment,) = tmp_path.glob(f"*{SEGMENT_SUFFIX}")
    with open(segment, "ab") as handle:
        handle.write(b"\xa7\x00\x00\x01\x00garbage")  # a crash in the middle of the next append
    reopened = Journal(tmp_path, max_bytes=1_000_000)
    assert reopened.read(reopened.trimmed, limit=10)[0] == payloads(3)
    reopened.append(payloads(1, start=3))  # and appending continues cleanly after the cut
    assert reopened.read(reopened.trimmed, limit=10)[0] == payloads(4)


def test_a_corrupted_frame_ends_the_readable_log(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_bytes=1_000_000)
    journal.append(payloads(3))
    journal.close()
    (segment,) = tmp_path.glob(f"*{SEGMENT_SUFFIX}")
    data = bytearray(segment.read_bytes())
    data[-2] ^= 0xFF  # flip a byte inside the last frame's payload
    segment.write_bytes(bytes(data))
    reopened = Journal(tmp_path, max_bytes=1_000_000)
    assert reopened.read(reopened.trimmed, limit=10)[0] == payloads(2)


def test_the_bound_refuses_instead_of_growing(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_bytes=200)
    journal.append(payloads(3))
    with pytest.raises(JournalFull):
        journal.append(payloads(10))
    assert journal.untrimmed_records == 3
    _records, position = journal.read(journal.trimmed, limit=3)
    journal.trim(position, 3)
    journal.append(payloads(3))  # room again once let go of


def test_reads_stop_at_the_byte_bound_but_always_return_one(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_bytes=1_000_000)
    journal.append([b"x" * 100, b"y" * 100, b"z" * 100])
    assert journal.read(journal.trimmed, limit=10, max_bytes=250)[0] == [b"x" * 100, b"y" * 100]
    assert journal.read(journal.trimmed, limit=10, max_bytes=10)[0] == [b"x" * 100]


def test_segments_roll_over_and_trimmed_segments_are_removed(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_bytes=1_000_000, segment_bytes=100)
    for i in range(20):
        journal.append(payloads(1, start=i))
    assert len(list(tmp_path.glob(f"*{SEGMENT_SUFFIX}"))) > 5
    records, position = journal.read(journal.trimmed, limit=20)
    assert records == payloads(20)
    journal.trim(position, 20)
    assert len(list(tmp_path.glob(f"*{SEGMENT_SUFFIX}"))) == 1  # only the one still being written
    assert (tmp_path / CURSOR_FILE).exists()
    journal.close()
    reopened = Journal(tmp_path, max_bytes=1_000_000, segment_bytes=100)
    assert reopened.is_empty
    reopened.append(payloads(1, start=99))
    assert reopened.read(reopened.trimmed, limit=5)[0] == payloads(1, start=99)


def test_raw_callback_round_trips_through_its_journal_form() -> None:
    raw = RawCallback(
        route="cdr-push",
        ingest_id="01ABC",
        received_at_us=123,
        remote_addr="10.0.0.1",
        content_type='application/json; x="\x1f"',
        body=b'{"cdr":[]}\x00\xff',
    )
    assert RawCallback.from_bytes(raw.to_bytes()) == raw
