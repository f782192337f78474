"""The edge's journal: callbacks on local disk, fsync'd before the vendor hears success.

An append-only log of frames in segment files (``<data_dir>/spool/edge*/``); every append is fsync'd
before it returns. A frame is ``magic | length | crc32 | payload``.

Two positions matter. The *trim* position, kept in a cursor file, is where the journal begins:
everything before it has been let go of for good. Readers (the edge's publisher) read from any
position at or after it; what they have read stays in the journal until the owner trims it — in spool
mode as soon as the broker acknowledged it, in journal mode only once the sink has stored everything
that came from it. A crash re-reads everything from the trim position, and the event ids absorb the
repeats downstream.

A failing disk never turns into a success. An append that writes short, or fails to write or to
fsync (ENOSPC, EIO), is cut back to the last whole frame and raises: every request of that group
commit gets a retryable failure. Frames are written at the offset the journal knows (never appended
blindly), so a cut that itself failed is overwritten by the next append, which first retries the cut.
Letting go needs no new space: the cursor is two fixed slots overwritten in place (the one not
written last, with a sequence number and a checksum, so a torn write leaves the other one whole), and
trimming deletes segments and punches holes in the trimmed start of the current one. Space is freed
only up to a cursor that is durable.

At open, the frames from the trim position on are checked. A torn or corrupt tail (a crash in the
middle of a write, nothing of it acknowledged) is cut at the last whole frame, and what was cut is
logged in one line. Corrupt bytes followed by whole frames are not a torn tail: they are kept and
skipped, so no frame after them is ever lost.

The journal is bounded in bytes: when the untrimmed part would exceed ``max_bytes`` an append is
refused (``JournalFull``) and the edge answers a retryable failure instead of growing without limit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ringback import logs

MAGIC = 0xA7
FRAME_HEADER = struct.Struct(">BII")  # magic, payload length, crc32(payload)
SEGMENT_SUFFIX = ".spool"
CURSOR_FILE = "cursor"
#: The cursor's earlier form (JSON, replaced by rename — which needs new space); read once, then removed.
LEGACY_CURSOR_FILE = "cursor.json"
CURSOR_MAGIC = 0x52424B43
CURSOR_RECORD = struct.Struct(">IQQQ")  # magic, sequence, segment, offset
CURSOR_CHECK = struct.Struct(">I")  # crc32 of the record
#: Each cursor slot has a sector of its own, so a torn write of one cannot touch the other.
CURSOR_SLOT_BYTES = 512
CURSOR_SLOTS = 2
DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024
#: Holes are punched in whole pages (the unit a file system frees).
PUNCH_ALIGN_BYTES = 4096
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02

log = logs.get(__name__)


class JournalFull(RuntimeError):
    """No room left within the configured bound."""


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


Fallocate = Callable[[int, int, int, int], int]


def _load_fallocate() -> Fallocate | None:
    name = ctypes.util.find_library("c")
    try:
        function = ctypes.CDLL(name, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    function.restype = ctypes.c_int
    return function


_FALLOCATE = _load_fallocate()


class FileOps:
    """The journal's calls to the operating system, one method each."""

    def open(self, path: Path, flags: int) -> int:
        return os.open(path, flags, 0o600)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        return os.pwrite(fd, data, offset)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def close(self, fd: int) -> None:
        os.close(fd)

    def unlink(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def replace(self, source: Path, target: Path) -> None:
        os.replace(source, target)

    def punch_hole(self, fd: int, length: int) -> None:
        """Give back the disk space of ``[0, length)``; the file keeps its size and reads zeros there."""
        if _FALLOCATE is None:
            raise OSError(errno.EOPNOTSUPP, "fallocate is not available")
        if _FALLOCATE(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, length) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    def free_bytes(self, directory: Path) -> int:
        stats = os.statvfs(directory)
        return stats.f_bavail * stats.f_frsize


@dataclass
class _Scan:
    """One segment checked at open: where its whole frames end, what was skipped and cut."""

    end: int
    records: int
    skips: dict[int, int] = field(default_factory=dict)  # start of corrupt bytes -> the next whole frame
    cut: int = 0  # bytes of torn tail after ``end``


def _frame_end(data: bytes, offset: int) -> int | None:
    """Where the whole frame at ``offset`` ends, or None when there is none."""
    if offset + FRAME_HEADER.size > len(data):
        return None
    magic, length, crc = FRAME_HEADER.unpack_from(data, offset)
    end: int = offset + FRAME_HEADER.size + length
    if magic != MAGIC or end > len(data):
        return None
    if zlib.crc32(memoryview(data)[offset + FRAME_HEADER.size : end]) != crc:
        return None
    return end


def _next_frame(data: bytes, offset: int) -> int | None:
    """The first whole, non-empty frame after ``offset`` (corrupt bytes in between), or None."""
    position = offset + 1
    while (position := data.find(bytes([MAGIC]), position)) >= 0:
        end = _frame_end(data, position)
        if end is not None and end > position + FRAME_HEADER.size:
            return position
        position += 1
    return None


def _scan(data: bytes, start: int) -> _Scan:
    scan = _Scan(end=start, records=0)
    offset = start
    while offset < len(data):
        end = _frame_end(data, offset)
        if end is None:
            resume = _next_frame(data, offset)
            if resume is None:
                break
            scan.skips[offset] = resume
            offset = resume
            continue
        scan.records += 1
        offset = scan.end = end
    scan.cut = max(0, len(data) - scan.end)
    return scan


class Journal:
    """Thread-safe; every method does blocking file I/O, so async callers run it on a worker thread."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        ops: FileOps | None = None,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.ops = ops or FileOps()
        self._lock = threading.Lock()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._cursor_fd, self._cursor_sequence, self._trimmed = self._open_cursor()
        self._segments: dict[int, int] = {}  # segment number -> size of its whole frames
        self._skips: dict[int, dict[int, int]] = {}  # segment number -> corrupt ranges readers skip
        self._untrimmed_records = 0
        self._dirty_tail: int | None = None  # a segment whose file may hold bytes past its known size
        self._writer: int | None = None  # fd of the segment being appended to
        self._writer_segment = -1
        self._writer_entry_durable = False  # the directory entry of the writer's segment is fsync'd
        self._punched: dict[int, int] = {}  # segment number -> bytes at its start given back
        self._punching = True  # False once the file system said it cannot punch holes
        self._recover_segments()

    # --- state ---
    def _segment_path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}{SEGMENT_SUFFIX}"

    def _open_cursor(self) -> tuple[int, int, Position]:
        """The cursor file's fd (kept open to be overwritten in place), its sequence and position."""
        path = self.directory / CURSOR_FILE
        for leftover in (f".{CURSOR_FILE}.tmp", f".{LEGACY_CURSOR_FILE}.tmp"):  # a replacement that never was
            self.ops.unlink(self.directory / leftover)
        if not path.exists() or path.stat().st_size < CURSOR_SLOTS * CURSOR_SLOT_BYTES:
            self._create_cursor(path, self._read_legacy_cursor())
        self.ops.unlink(self.directory / LEGACY_CURSOR_FILE)  # taken over (now, or before a crash)
        fd = self.ops.open(path, os.O_RDWR)
        slots = [os.pread(fd, CURSOR_SLOT_BYTES, slot * CURSOR_SLOT_BYTES) for slot in range(CURSOR_SLOTS)]
        found = [cursor for cursor in map(_read_cursor_slot, slots) if cursor is not None]
        if not found:
            log.error("journal cursor unreadable: reading the journal from its oldest segment", path=str(path))
            return fd, 0, Position(0, 0)
        sequence, position = max(found, key=lambda cursor: cursor[0])
        return fd, sequence, position

    def _read_legacy_cursor(self) -> Position:
        try:
            data = json.loads((self.directory / LEGACY_CURSOR_FILE).read_text())
            return Position(int(data["segment"]), int(data["offset"]))
        except (FileNotFoundError, ValueError, KeyError):
            return Position(0, 0)

    def _create_cursor(self, path: Path, position: Position) -> None:
        tmp = self.directory / f".{CURSOR_FILE}.tmp"
        content = bytearray(CURSOR_SLOTS * CURSOR_SLOT_BYTES)
        sequence = 1
        slot = (sequence % CURSOR_SLOTS) * CURSOR_SLOT_BYTES  # where ``_write_cursor`` would put it
        content[slot : slot + CURSOR_SLOT_BYTES] = _cursor_slot(sequence, position).ljust(CURSOR_SLOT_BYTES, b"\0")
        fd = self.ops.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            self._write_all(fd, bytes(content), 0)
            self.ops.fsync(fd)
        finally:
            self.ops.close(fd)
        self.ops.replace(tmp, path)
        self._fsync_directory()

    def _write_cursor(self, position: Position) -> None:
        """Overwrite the slot not written last, in place: no new space, and the other slot stays whole."""
        sequence = self._cursor_sequence + 1
        self._write_all(
            self._cursor_fd, _cursor_slot(sequence, position), (sequence % CURSOR_SLOTS) * CURSOR_SLOT_BYTES
        )
        self.ops.fsync(self._cursor_fd)
        self._cursor_sequence = sequence

    def _recover_segments(self) -> None:
        """Segments from the trim position on, each checked frame by frame; a torn tail is cut."""
        cuts: list[dict[str, int]] = []
        for path in sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}")):
            number = int(path.stem)
            if number < self._trimmed.segment:
                self._remove_segment_file(number)
                continue
            start = self._trimmed.offset if number == self._trimmed.segment else 0
            scan = _scan(path.read_bytes(), start)
            self._segments[number] = scan.end
            self._untrimmed_records += scan.records
            if scan.skips:
                self._skips[number] = scan.skips
                log.error(
                    "journal: corrupt bytes between whole frames kept and skipped",
                    segment=number,
                    ranges=[[begin, end] for begin, end in sorted(scan.skips.items())],
                )
            if scan.cut:
                cuts.append({"segment": number, "offset": scan.end, "bytes": scan.cut})
                self._cut(number, scan.end)
        if cuts:
            log.warning(
                "journal: torn tail cut at the last whole frame",
                cuts=cuts,
                bytes=sum(cut["bytes"] for cut in cuts),
                trim_segment=self._trimmed.segment,
                trim_offset=self._trimmed.offset,
            )

    def _cut(self, number: int, length: int) -> None:
        try:
            fd = self.ops.open(self._segment_path(number), os.O_WRONLY)
            try:
                self.ops.ftruncate(fd, length)
                self.ops.fsync(fd)
            finally:
                self.ops.close(fd)
        except OSError as exc:  # the bytes past ``length`` are never read; the next append cuts them first
            self._dirty_tail = number
            log.error("journal: cutting a torn tail failed", segment=number, offset=length, error=repr(exc))

    @property
    def trimmed(self) -> Position:
        return self._trimmed

    @property
    def end(self) -> Position:
        with self._lock:
            live = [n for n in self._segments if n >= self._trimmed.segment]
            if not live:
                return self._trimmed
            last = max(live)
            return Position(last, self._segments[last])

    @property
    def untrimmed_bytes(self) -> int:
        with self._lock:
            return self._untrimmed_bytes_locked()

    def _untrimmed_bytes_locked(self) -> int:
        total = 0
        for number, size in self._segments.items():
            if number < self._trimmed.segment:
                continue  # let go of; its file is removed at the next trim or start
            start = self._trimmed.offset if number == self._trimmed.segment else 0
            total += max(0, size - start)
        return total

    @property
    def untrimmed_records(self) -> int:
        return self._untrimmed_records

    @property
    def is_empty(self) -> bool:
        return self._untrimmed_records == 0

    def free_bytes(self) -> int:
        """Free space on the journal's file system."""
        return self.ops.free_bytes(self.directory)

    # --- writing ---
    def append(self, payloads: list[bytes]) -> Position:
        """Append and fsync; all or nothing. Returns the end position. Raises ``JournalFull`` at the
        bound and ``OSError`` when the disk failed, after cutting the segment back to where it was."""
        size = sum(FRAME_HEADER.size + len(p) for p in payloads)
        with self._lock:
            if self._untrimmed_bytes_locked() + size > self.max_bytes:  # checked before building the frames
                raise JournalFull(f"journal holds {self._untrimmed_bytes_locked()} of {self.max_bytes} bytes")
            frames = b"".join(FRAME_HEADER.pack(MAGIC, len(p), zlib.crc32(p)) + p for p in payloads)
            segment = self._writable_segment(len(frames))
            fd = self._writer
            assert fd is not None
            start = self._segments[segment]
            try:
                if self._dirty_tail == segment:
                    self.ops.ftruncate(fd, start)
                    self.ops.fsync(fd)
                    self._dirty_tail = None
                self._write_all(fd, frames, start)
                self.ops.fsync(fd)
            except OSError:
                self._cut_back(fd, segment, start)
                raise
            self._segments[segment] = start + len(frames)
            self._untrimmed_records += len(payloads)
            return Position(segment, self._segments[segment])

    def _write_all(self, fd: int, data: bytes, offset: int) -> None:
        """Write all of ``data`` at ``offset``; a write that stops short raises (ENOSPC)."""
        view = memoryview(data)
        written = 0
        while written < len(data):
            count = self.ops.pwrite(fd, view[written:], offset + written)
            if count <= 0:
                raise OSError(errno.ENOSPC, f"short write: {written} of {len(data)} bytes")
            written += count

    def _cut_back(self, fd: int, segment: int, length: int) -> None:
        """After a failed append: the segment ends at its last whole frame again."""
        try:
            self.ops.ftruncate(fd, length)
            self.ops.fsync(fd)
        except OSError as exc:
            self._dirty_tail = segment  # the next append cuts first, and writes at ``length`` anyway
            log.error("journal: cutting back a failed append failed", segment=segment, offset=length, error=repr(exc))
        else:
            if self._dirty_tail == segment:
                self._dirty_tail = None

    def _writable_segment(self, incoming: int) -> int:
        live = [n for n in self._segments if n >= self._trimmed.segment]
        current = max(live) if live else self._trimmed.segment
        if current not in self._segments and self._trimmed.offset > 0:
            current += 1  # never write below the trim position: those bytes count as let go
        if (
            current in self._segments
            and self._segments[current]
            and self._segments[current] + incoming > self.segment_bytes
        ):
            current += 1
        if self._writer is not None and self._writer_segment != current:
            self._close_writer()
        if self._writer is None:
            self._writer = self.ops.open(self._segment_path(current), os.O_WRONLY | os.O_CREAT)
            self._writer_segment = current
            self._writer_entry_durable = False
            self._segments.setdefault(current, 0)
            if os.fstat(self._writer).st_size > self._segments[current]:
                self._dirty_tail = current  # left over from an earlier life: cut before writing
        if not self._writer_entry_durable:  # frames in a segment whose name a crash could lose are not durable
            self._fsync_directory()
            self._writer_entry_durable = True
        return current

    def _close_writer(self) -> None:
        if self._writer is not None:
            fd, self._writer = self._writer, None
            self._writer_segment = -1
            self.ops.close(fd)

    def _fsync_directory(self) -> None:
        fd = self.ops.open(self.directory, os.O_RDONLY)
        try:
            self.ops.fsync(fd)
        finally:
            self.ops.close(fd)

    # --- reading ---
    def read(self, start: Position, limit: int, max_bytes: int | None = None) -> tuple[list[bytes], Position]:
        """Up to ``limit`` payloads from ``start`` (and, past the first, no more than ``max_bytes`` of
        them), oldest first, and the position after the last one. ``start`` before the trim position
        reads from the trim position."""
        with self._lock:
            payloads: list[bytes] = []
            position = max(start, self._trimmed)
            taken = 0
            for payload, after in self._frames(position, limit):
                if payloads and max_bytes is not None and taken + len(payload) > max_bytes:
                    break
                payloads.append(payload)
                taken += len(payload)
                position = after
            return payloads, position

    def first_untrimmed(self) -> bytes | None:
        with self._lock:
            return next((payload for payload, _ in self._frames(self._trimmed, limit=1)), None)

    def _frames(self, start: Position, limit: int | None) -> Iterator[tuple[bytes, Position]]:
        """Frames from ``start`` on, read one at a time (never a whole segment into memory)."""
        count = 0
        for number in sorted(n for n in self._segments if n >= start.segment):
            size = self._segments[number]
            skips = self._skips.get(number, {})
            offset = start.offset if number == start.segment else 0
            if offset >= size:
                continue
            with open(self._segment_path(number), "rb") as handle:
                handle.seek(offset)
                while offset < size:
                    if offset in skips:
                        offset = skips[offset]
                        handle.seek(offset)
                        continue
                    header = handle.read(FRAME_HEADER.size)
                    if len(header) < FRAME_HEADER.size:
                        raise OSError(errno.EIO, f"journal segment {number} ends before its frames do")
                    _, length, _ = FRAME_HEADER.unpack(header)
                    payload = handle.read(length)
                    if len(payload) < length:
                        raise OSError(errno.EIO, f"journal segment {number} ends inside a frame at {offset}")
                    offset += FRAME_HEADER.size + length
                    yield payload, Position(number, offset)
                    count += 1
                    if limit is not None and count >= limit:
                        return

    # --- letting go ---
    def trim(self, position: Position, records: int) -> None:
        """Let go of everything before ``position`` (``records`` records): move the trim position,
        durably, then give back the space before it. Raises ``OSError`` (and lets go of nothing) when
        the cursor cannot be written; freeing space that fails is tried again at the next trim."""
        with self._lock:
            if position <= self._trimmed:
                return
            self._write_cursor(position)
            self._trimmed = position
            self._untrimmed_records = max(0, self._untrimmed_records - records)
            self._release_space()

    def _release_space(self) -> None:
        newest = max(self._segments, default=self._trimmed.segment)
        for number in sorted(self._segments):
            wholly_trimmed = number < self._trimmed.segment or (
                number == self._trimmed.segment and self._segments[number] <= self._trimmed.offset
            )
            if not wholly_trimmed:
                break
            if number == newest == self._trimmed.segment and self._punching:
                break  # the segment being written: its trimmed start is punched below
            if number == self._writer_segment:
                self._close_writer()
            if self._remove_segment_file(number):
                del self._segments[number]
                self._skips.pop(number, None)
                self._punched.pop(number, None)
        if self._trimmed.segment in self._segments:
            self._punch(self._trimmed.segment, self._trimmed.offset)

    def _remove_segment_file(self, number: int) -> bool:
        try:
            self.ops.unlink(self._segment_path(number))
        except OSError as exc:
            log.warning(
                "journal: removing a trimmed segment failed, trying again later", segment=number, error=repr(exc)
            )
            return False
        return True

    def _punch(self, number: int, offset: int) -> None:
        length = offset - offset % PUNCH_ALIGN_BYTES
        if not self._punching or length <= self._punched.get(number, 0):
            return
        try:
            if number == self._writer_segment and self._writer is not None:
                self.ops.punch_hole(self._writer, length)
            else:
                fd = self.ops.open(self._segment_path(number), os.O_WRONLY)
                try:
                    self.ops.punch_hole(fd, length)
                finally:
                    self.ops.close(fd)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS):
                self._punching = False  # from now on a wholly trimmed segment is removed instead
                log.info("journal: the file system cannot punch holes; trimmed segments are removed whole")
            else:
                log.warning(
                    "journal: giving back trimmed space failed, trying again later", segment=number, error=repr(exc)
                )
            return
        self._punched[number] = length

    def close(self) -> None:
        with self._lock:
            self._close_writer()
            if self._cursor_fd >= 0:
                fd, self._cursor_fd = self._cursor_fd, -1
                self.ops.close(fd)


def _cursor_slot(sequence: int, position: Position) -> bytes:
    record = CURSOR_RECORD.pack(CURSOR_MAGIC, sequence, position.segment, position.offset)
    return record + CURSOR_CHECK.pack(zlib.crc32(record))


def _read_cursor_slot(slot: bytes) -> tuple[int, Position] | None:
    """(sequence, position) of a whole slot, None for an empty or torn one."""
    size = CURSOR_RECORD.size + CURSOR_CHECK.size
    if len(slot) < size:
        return None
    record = slot[: CURSOR_RECORD.size]
    (check,) = CURSOR_CHECK.unpack_from(slot, CURSOR_RECORD.size)
    magic, sequence, segment, offset = CURSOR_RECORD.unpack(record)
    if magic != CURSOR_MAGIC or zlib.crc32(record) != check:
        return None
    return sequence, Position(segment, offset)
