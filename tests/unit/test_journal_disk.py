"""The edge journal on a failing disk: real files, with the disk's failures made at the journal's
OS-call seam (``FileOps``). Every failure point gives an error, never a success; the segment ends at
its last whole frame again; letting go needs no new space; a start logs what it cut and never cuts a
whole frame."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ringback.edge.journal import (
    CURSOR_FILE,
    CURSOR_SLOT_BYTES,
    LEGACY_CURSOR_FILE,
    SEGMENT_SUFFIX,
    FileOps,
    Journal,
    Position,
)

MAX_BYTES = 10_000_000


def payloads(n: int, start: int = 0, size: int = 30) -> list[bytes]:
    return [f"callback-{i}-".encode().ljust(size, b"x") for i in range(start, start + n)]


class Disk(FileOps):
    """The real calls, unless told to fail: ``full`` makes the disk refuse every new byte (a write
    stops where the file's allocated size ends, creating a file fails), the others fail one call."""

    def __init__(self) -> None:
        self.full = False
        self.fail_write: OSError | None = None
        self.fail_fsync: OSError | None = None
        self.fail_truncate: OSError | None = None
        self.fail_unlink: OSError | None = None
        self.fail_punch: OSError | None = None
        self.created: list[Path] = []

    def open(self, path: Path, flags: int) -> int:
        if flags & os.O_CREAT and not path.exists():
            if self.full:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.created.append(path)
        return super().open(path, flags)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        if self.fail_write is not None:
            raise self.fail_write
        if self.full:
            room = max(0, os.fstat(fd).st_size - offset)
            if room == 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            data = data[:room]  # the short write a full tmpfs gives
        return super().pwrite(fd, data, offset)

    def fsync(self, fd: int) -> None:
        if self.fail_fsync is not None:
            raise self.fail_fsync
        super().fsync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        if self.fail_truncate is not None:
            raise self.fail_truncate
        super().ftruncate(fd, length)

    def unlink(self, path: Path) -> None:
        if self.fail_unlink is not None:
            raise self.fail_unlink
        super().unlink(path)

    def punch_hole(self, fd: int, length: int) -> None:
        if self.fail_punch is not None:
            raise self.fail_punch
        super().punch_hole(fd, length)


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SEGMENT_SUFFIX}"))


def everything(journal: Journal) -> list[bytes]:
    return journal.read(journal.trimmed, limit=1_000_000)[0]


def reopened(directory: Path) -> tuple[Journal, list[dict[str, object]]]:
    with capture_logs() as logged:
        journal = Journal(directory, MAX_BYTES)
    return journal, logged


def eio() -> OSError:
    return OSError(errno.EIO, "Input/output error")


def test_a_short_write_on_a_full_disk_fails_the_append_and_leaves_only_whole_frames(tmp_path: Path) -> None:
    disk = Disk()
    journal = Journal(tmp_path, MAX_BYTES, ops=disk)
    journal.append(payloads(3))
    (segment,) = segments(tmp_path)
    size = segment.stat().st_size
    with open(segment, "r+b") as handle:  # room for half a frame more, as a nearly full disk has
        handle.truncate(size + 20)
    disk.full = True
    with pytest.raises(OSError) as refused:
        journal.append(payloads(2, start=3))
    assert refused.value.errno == errno.ENOSPC
    assert segment.stat().st_size == size  # cut back: no half frame stays
    assert journal.untrimmed_records == 3 and journal.end == Position(0, size)
    disk.full = False  # space is back: acceptance resumes, at the right place
    journal.append(payloads(1, start=9))
    assert everything(journal) == payloads(3) + payloads(1, start=9)
    journal.close()
    again, logged = reopened(tmp_path)
    assert everything(again) == payloads(3) + payloads(1, start=9)
    assert not [entry for entry in logged if "cut" in str(entry["event"])]


def test_no_space_at_all_fails_the_append(tmp_path: Path) -> None:
    disk = Disk()
    journal = Journal(tmp_path, MAX_BYTES, ops=disk)
    journal.append(payloads(2))
    disk.full = True
    with pytest.raises(OSError):
        journal.append(payloads(1, start=2))
    disk.full = False
    journal.append(payloads(1, start=3))
    assert everything(journal) == payloads(2) + payloads(1, start=3)


def test_an_fsync_error_fails_the_append_and_its_frames_are_gone(tmp_path: Path) -> None:
    disk = Disk()
    journal = Journal(tmp_path, MAX_BYTES, ops=disk)
    journal.append(payloads(2))
    disk.fail_fsync = eio()
    with pytest.raises(OSError):
        journal.append(payloads(1, start=2))
    disk.fail_fsync = None
    assert journal.untrimmed_records == 2
    journal.close()
    again, _ = reopened(tmp_path)
    assert everything(again) == payloads(2)  # the failed frame is not published as if acknowledged


def test_a_failed_cut_back_is_overwritten_by_the_next_append(tmp_path: Path) -> None:
    """The failed append's frames were written whole (only the fsync failed) and the cut failed too:
    they must not come back after the next append, nor after a restart."""
    disk = Disk()
    journal = Journal(tmp_path, MAX_BYTES, ops=disk)
    journal.append(payloads(2))
    disk.fail_fsync, disk.fail_truncate = eio(), eio()
    with pytest.raises(OSError):
        journal.append(payloads(5, start=2))
    disk.fail_fsync = disk.fail_truncate = None
    journal.append(payloads(1, start=7))
    assert everything(journal) == payloads(2) + payloads(1, start=7)
    journal.close()
    again, logged = reopened(tmp_path)
    assert everything(again) == payloads(2) + payloads(1, start=7)
    assert not [entry for entry in logged if "cut" in str(entry["event"])]


def test_a_new_segment_whose_name_is_not_durable_fails_the_append(tmp_path: Path) -> None:
    disk = Disk()
    journal = Journal(tmp_path, MAX_BYTES, segment_bytes=100, ops=disk)
    journal.append(payloads(2))
    disk.fail_fsync = eio()  # the directory's fsync after creating the next segment
    with pytest.raises(OSError):
        journal.append(payloads(2, start=2))
    disk.fail_fsync = None
    journal.append(payloads(2, start=4))
    assert everything(journal) == payloads(2) + payloads(2, start=4)


@pytest.mark.parametrize("failure", ["write", "fsync"])
def test_a_cursor_that_cannot_be_written_lets_go_of_nothing(tmp_path: Path, failure: str) -> None:
    disk = Disk()
    journal = Journal(tmp_path, MAX_BYTES, segment_bytes=100, ops=disk)
    for i in range(6):
        journal.append(payloads(1, start=i))
    trimmed_to = journal.read(journal.trimmed, limit=4)[1]
    files = segments(tmp_path)
    if failure == "write":
        disk.fail_write = eio()
    else:
        disk.fail_fsync = eio()
    with pytest.raises(OSError):
        journal.trim(trimmed_to, 4)
    assert journal.trimmed == Position(0, 0) and journal.untrimmed_records == 6
    assert segments(tmp_path) == files  # no space given back beyond a durable cursor
    disk.fail_write = disk.fail_fsync = None
    journal.close()
    again, _ = reopened(tmp_path)
    if failure == "write":
        assert everything(again) == payloads(6)  # all of it published again: nothing was let go of
    else:  # the slot may have reached the disk after all: either position is whole, and all after it kept
        assert everything(again) in (payloads(6), payloads(2, start=4))
    again.trim(trimmed_to, 4)  # and once the disk writes again, letting go works
    assert everything(again) == payloads(2, start=4)


def test_letting_go_on_a_full_disk_needs_no_new_space_and_frees_it(tmp_path: Path) -> None:
    disk = Disk()
    journal = Journal(tmp_path, MAX_BYTES, segment_bytes=20_000, ops=disk)
    for i in range(300):
        journal.append(payloads(1, start=i, size=200))
    disk.full = True
    disk.created.clear()
    with pytest.raises(OSError):
        journal.append(payloads(1, start=999))
    stored, position = journal.read(journal.trimmed, limit=1_000_000)
    blocks_before = sum(path.stat().st_blocks for path in segments(tmp_path))
    journal.trim(position, len(stored))
    assert journal.is_empty and disk.created == []
    assert sum(path.stat().st_blocks for path in segments(tmp_path)) < blocks_before / 4
    disk.full = False  # space is back: acceptance resumes
    journal.append(payloads(1, start=1000, size=200))
    journal.close()
    again, _ = reopened(tmp_path)
    assert everything(again) == payloads(1, start=1000, size=200)


def test_the_trimmed_start_of_the_segment_being_written_is_given_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path, MAX_BYTES)
    for i in range(400):
        journal.append(payloads(1, start=i, size=200))
    (segment,) = segments(tmp_path)
    allocated = segment.stat().st_blocks
    kept, position = journal.read(journal.trimmed, limit=390)
    journal.trim(position, len(kept))
    assert segment.stat().st_blocks < allocated / 4
    assert everything(journal) == payloads(10, start=390, size=200)
    journal.close()
    again, logged = reopened(tmp_path)
    assert everything(again) == payloads(10, start=390, size=200)
    assert not [entry for entry in logged if entry["log_level"] in ("warning", "error")]


def test_without_holes_a_wholly_trimmed_segment_is_removed(tmp_path: Path) -> None:
    disk = Disk()
    disk.fail_punch = OSError(errno.EOPNOTSUPP, "Operation not supported")
    journal = Journal(tmp_path, MAX_BYTES, ops=disk)
    journal.append(payloads(5, size=2000))
    journal.trim(*read_all(journal))
    journal.trim(*read_all(journal, append=payloads(2, start=5, size=2000)))
    assert segments(tmp_path) == []  # nothing on disk while nothing is held
    journal.append(payloads(1, start=7))
    journal.close()
    again, _ = reopened(tmp_path)
    assert everything(again) == payloads(1, start=7)


def read_all(journal: Journal, append: list[bytes] | None = None) -> tuple[Position, int]:
    if append:
        journal.append(append)
    records, position = journal.read(journal.trimmed, limit=1_000_000)
    return position, len(records)


def test_a_segment_that_cannot_be_removed_is_removed_at_the_next_trim(tmp_path: Path) -> None:
    disk = Disk()
    journal = Journal(tmp_path, MAX_BYTES, segment_bytes=100, ops=disk)
    for i in range(6):
        journal.append(payloads(1, start=i))
    disk.fail_unlink = eio()
    journal.trim(*read_all(journal))  # the cursor moved: that is what counts
    assert journal.is_empty and journal.untrimmed_bytes == 0 and len(segments(tmp_path)) > 1
    disk.fail_unlink = None
    journal.trim(*read_all(journal, append=payloads(1, start=6)))
    assert len(segments(tmp_path)) == 1


def test_a_torn_cursor_write_keeps_the_previous_position(tmp_path: Path) -> None:
    journal = Journal(tmp_path, MAX_BYTES)
    journal.append(payloads(4))
    _, position = journal.read(journal.trimmed, limit=1)
    journal.trim(position, 1)
    journal.append(payloads(1, start=4))
    journal.close()
    with open(tmp_path / CURSOR_FILE, "r+b") as handle:  # the next slot, half written when the power went
        handle.seek(CURSOR_SLOT_BYTES)
        handle.write(b"\x52\x42\x4b\x43\xff\xff")
    again, _ = reopened(tmp_path)
    assert again.trimmed == position and everything(again) == payloads(4, start=1)


def test_a_cursor_from_before_is_taken_over(tmp_path: Path) -> None:
    journal = Journal(tmp_path, MAX_BYTES)
    journal.append(payloads(4))
    _, position = journal.read(journal.trimmed, limit=3)
    journal.close()
    (tmp_path / CURSOR_FILE).unlink()
    (tmp_path / LEGACY_CURSOR_FILE).write_text(json.dumps({"segment": position.segment, "offset": position.offset}))
    (tmp_path / f".{LEGACY_CURSOR_FILE}.tmp").write_text('{"segm')  # its replacement the full disk cut short
    again, _ = reopened(tmp_path)
    assert again.trimmed == position and everything(again) == payloads(1, start=3)
    assert sorted(path.name for path in tmp_path.iterdir() if not path.name.endswith(SEGMENT_SUFFIX)) == [CURSOR_FILE]


def test_a_start_logs_exactly_what_it_cut_in_one_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path, MAX_BYTES)
    journal.append(payloads(3))
    end = journal.end
    journal.close()
    (segment,) = segments(tmp_path)
    with open(segment, "ab") as handle:
        handle.write(b"\xa7\x00\x00\x01\x00torn")  # a crash in the middle of the next append
    again, logged = reopened(tmp_path)
    (line,) = [entry for entry in logged if "cut" in str(entry["event"])]
    assert line["cuts"] == [{"segment": 0, "offset": end.offset, "bytes": 9}] and line["bytes"] == 9
    assert everything(again) == payloads(3)
    assert segment.stat().st_size == end.offset


def test_corrupt_bytes_before_whole_frames_cut_nothing_after_them(tmp_path: Path) -> None:
    """A frame spoiled in the middle of the journal (the old short write, or the medium): every whole
    frame after it is kept, published, and stays after more appends and restarts."""
    journal = Journal(tmp_path, MAX_BYTES)
    journal.append(payloads(2))
    spoiled = journal.end
    journal.append(payloads(4, start=2))
    journal.close()
    (segment,) = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[spoiled.offset + 12] ^= 0xFF  # inside the third frame's payload
    segment.write_bytes(bytes(data))
    again, logged = reopened(tmp_path)
    assert everything(again) == payloads(2) + payloads(3, start=3)
    assert not [entry for entry in logged if "cut" in str(entry["event"])]
    (kept,) = [entry for entry in logged if entry["log_level"] == "error"]
    assert kept["ranges"] == [[spoiled.offset, spoiled.offset + 9 + 30]]
    assert again.untrimmed_records == 5
    again.append(payloads(1, start=6))
    again.close()
    third, _ = reopened(tmp_path)
    assert everything(third) == payloads(2) + payloads(3, start=3) + payloads(1, start=6)


def test_a_half_frame_followed_by_whole_ones_cuts_none_of_them(tmp_path: Path) -> None:
    """What a short write followed by appends left behind before: a half frame, then whole frames."""
    whole = Journal(tmp_path / "whole", MAX_BYTES)
    whole.append(payloads(2))
    half_at = whole.end.offset
    whole.append(payloads(1, start=2))
    third_end = whole.end.offset
    whole.append(payloads(2, start=3))
    whole.close()
    (source,) = segments(tmp_path / "whole")
    data = source.read_bytes()
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / source.name).write_bytes(data[: half_at + 20] + data[third_end:])
    again, logged = reopened(torn)
    assert everything(again) == payloads(2) + payloads(2, start=3)
    assert not [entry for entry in logged if "cut" in str(entry["event"])]
