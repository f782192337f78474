"""The edge's journal: callbacks on local disk, fsync'd before the vendor hears success.

An append-only log of frames in segment files (``<data_dir>/spool/edge*/``); every append is fsync'd
before it returns. A frame is ``magic | length | crc32 | payload``; at open, a torn or corrupt tail (a
crash in the middle of a write) is cut at the last whole frame, which is safe because nothing after
it was ever acknowledged.

Two positions matter. The *trim* position, kept in a cursor file replaced atomically, is where the
journal begins: everything before it has been let go of for good. Readers (the edge's publisher)
read from any position at or after it; what they have read stays in the journal until the owner
trims it — in spool mode as soon as the broker acknowledged it, in journal mode only once the sink
has stored everything that came from it. A crash re-reads everything from the trim position, and
the event ids absorb the repeats downstream.

The journal is bounded in bytes: when the untrimmed part would exceed ``max_bytes`` an append is
refused (``JournalFull``) and the edge answers a retryable failure instead of growing without limit.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = 0xA7
FRAME_HEADER = struct.Struct(">BII")  # magic, payload length, crc32(payload)
SEGMENT_SUFFIX = ".spool"
CURSOR_FILE = "cursor.json"
DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024


class JournalFull(RuntimeError):
    """No room left within the configured bound."""


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


class Journal:
    """Thread-safe; every method does blocking file I/O, so async callers run it on a worker thread."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._trimmed = self._read_cursor()
        self._segments = self._recover_segments()  # segment number -> valid size
        self._writer: int | None = None  # fd of the segment being appended to
        self._untrimmed_records = sum(1 for _ in self._frames(self._trimmed, limit=None))

    # --- state ---
    def _segment_path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}{SEGMENT_SUFFIX}"

    def _read_cursor(self) -> Position:
        try:
            data = json.loads((self.directory / CURSOR_FILE).read_text())
            return Position(int(data["segment"]), int(data["offset"]))
        except (FileNotFoundError, ValueError, KeyError):
            return Position(0, 0)

    def _recover_segments(self) -> dict[int, int]:
        """Segment number -> size, with a torn tail cut off and trimmed segments removed."""
        segments: dict[int, int] = {}
        for path in sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}")):
            number = int(path.stem)
            if number < self._trimmed.segment:
                path.unlink()
                continue
            segments[number] = self._valid_length(path)
        return segments

    @staticmethod
    def _valid_length(path: Path) -> int:
        offset = 0
        size = path.stat().st_size
        with open(path, "rb") as handle:
            while offset + FRAME_HEADER.size <= size:
                magic, length, crc = FRAME_HEADER.unpack(handle.read(FRAME_HEADER.size))
                end = offset + FRAME_HEADER.size + length
                if magic != MAGIC or end > size or zlib.crc32(handle.read(length)) != crc:
                    break
                offset = end
        if offset != size:
            with open(path, "r+b") as handle:
                handle.truncate(offset)
                os.fsync(handle.fileno())
        return offset

    @property
    def trimmed(self) -> Position:
        return self._trimmed

    @property
    def end(self) -> Position:
        with self._lock:
            if not self._segments:
                return self._trimmed
            last = max(self._segments)
            return Position(last, self._segments[last])

    @property
    def untrimmed_bytes(self) -> int:
        with self._lock:
            return self._untrimmed_bytes_locked()

    def _untrimmed_bytes_locked(self) -> int:
        total = 0
        for number, size in self._segments.items():
            start = self._trimmed.offset if number == self._trimmed.segment else 0
            total += max(0, size - start)
        return total

    @property
    def untrimmed_records(self) -> int:
        return self._untrimmed_records

    @property
    def is_empty(self) -> bool:
        return self._untrimmed_records == 0

    # --- writing ---
    def append(self, payloads: list[bytes]) -> Position:
        """Append and fsync; all or nothing as far as callers are concerned. Returns the end position."""
        size = sum(FRAME_HEADER.size + len(p) for p in payloads)
        with self._lock:
            if self._untrimmed_bytes_locked() + size > self.max_bytes:  # checked before building the frames
                raise JournalFull(f"journal holds {self._untrimmed_bytes_locked()} of {self.max_bytes} bytes")
            frames = b"".join(FRAME_HEADER.pack(MAGIC, len(p), zlib.crc32(p)) + p for p in payloads)
            segment = self._writable_segment(len(frames))
            fd = self._writer
            assert fd is not None
            os.write(fd, frames)
            os.fsync(fd)
            self._segments[segment] += len(frames)
            self._untrimmed_records += len(payloads)
            return Position(segment, self._segments[segment])

    def _writable_segment(self, incoming: int) -> int:
        current = max(self._segments) if self._segments else self._trimmed.segment
        if current not in self._segments and current == self._trimmed.segment and self._trimmed.offset > 0:
            current += 1  # never write below the trim position: those bytes count as let go
        if current not in self._segments or (
            self._segments[current] and self._segments[current] + incoming > self.segment_bytes
        ):
            if current in self._segments:
                current += 1
            self._close_writer()
            self._segments[current] = 0
        if self._writer is None:
            self._writer = os.open(self._segment_path(current), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._fsync_directory()
        return current

    def _close_writer(self) -> None:
        if self._writer is not None:
            os.close(self._writer)
            self._writer = None

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

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
            offset = start.offset if number == start.segment else 0
            if offset >= size:
                continue
            with open(self._segment_path(number), "rb") as handle:
                handle.seek(offset)
                while offset < size:
                    _, length, _ = FRAME_HEADER.unpack(handle.read(FRAME_HEADER.size))
                    payload = handle.read(length)
                    offset += FRAME_HEADER.size + length
                    yield payload, Position(number, offset)
                    count += 1
                    if limit is not None and count >= limit:
                        return

    # --- letting go ---
    def trim(self, position: Position, records: int) -> None:
        """Let go of everything before ``position`` (``records`` records): move the trim position,
        durably, and delete the segments wholly before it."""
        with self._lock:
            if position <= self._trimmed:
                return
            tmp = self.directory / f".{CURSOR_FILE}.tmp"
            with open(tmp, "w") as handle:
                json.dump({"segment": position.segment, "offset": position.offset}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.directory / CURSOR_FILE)
            self._fsync_directory()
            self._trimmed = position
            self._untrimmed_records = max(0, self._untrimmed_records - records)
            newest = max(self._segments) if self._segments else position.segment
            for number in [
                n
                for n in self._segments
                if n < position.segment
                or (n == position.segment and n != newest and self._segments[n] <= position.offset)
            ]:
                self._segment_path(number).unlink(missing_ok=True)
                del self._segments[number]

    def close(self) -> None:
        with self._lock:
            self._close_writer()
