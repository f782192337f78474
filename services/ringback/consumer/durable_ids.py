"""The durable id store: the dedupe rule against ids kept in SQLite, which survive a broker that starts afresh."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ringback.consumer.dedupe import DEFAULT_MAX_AGE, DEFAULT_MAX_IDS, Verdict, compact
from ringback.consumer.times import MICROSECOND

#: The durable id store, one SQLite file per consumer group in ``state_dir``.
ID_STORE_SUFFIX = ".ids.sqlite"


def billing_digest(billing: tuple[Any, ...]) -> bytes:
    """The same for equal billing values in every process (``hash`` of text is salted per process);
    an equal amount written with another scale gives the same digest."""
    text = repr(tuple(value.normalize() if isinstance(value, Decimal) else value for value in billing))
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


class DurableIds:
    """The dedupe rule against ids kept on disk (SQLite), for ``max_age`` of stream time and at most
    ``max_ids`` ids, as ``DedupeWindow``. First copies judged are pending until ``keep`` writes them, once
    the job has the batch; ``drop_pending`` forgets them (the batch was not processed)."""

    def __init__(self, path: Path, max_age: timedelta = DEFAULT_MAX_AGE, max_ids: int = DEFAULT_MAX_IDS) -> None:
        if max_ids <= 0 or max_age <= timedelta(0):
            raise ValueError("max_age and max_ids must be positive")
        self.max_age_us = max_age // MICROSECOND
        self.max_ids = max_ids
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS ids (id BLOB PRIMARY KEY, billing BLOB, seen_us INTEGER)")
        self._db.execute("CREATE INDEX IF NOT EXISTS ids_by_time ON ids (seen_us)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        self.clock_us = int(self.get("clock_us") or 0)
        self._pending: dict[bytes, tuple[bytes, int]] = {}

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count() FROM ids").fetchone()[0]) + len(self._pending)

    def get(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, name: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def judge(self, event_id: str, received_at_us: int, billing: tuple[Any, ...]) -> Verdict:
        self.clock_us = max(self.clock_us, received_at_us)
        key = id_bytes(event_id)
        digest = billing_digest(billing)
        first = self._pending.get(key)
        if first is None:
            row = self._db.execute(
                "SELECT billing FROM ids WHERE id = ? AND seen_us >= ?", (key, self.clock_us - self.max_age_us)
            ).fetchone()
            first = None if row is None else (bytes(row[0]), 0)
        if first is not None:
            return Verdict.DUPLICATE if first[0] == digest else Verdict.CONFLICT
        self._pending[key] = (digest, self.clock_us)
        return Verdict.FIRST

    def keep(self) -> None:
        """Write the pending first copies, durably, and forget what is out of the window."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO ids (id, billing, seen_us) VALUES (?, ?, ?)",
                [(key, digest, seen) for key, (digest, seen) in self._pending.items()],
            )
            self._db.execute("DELETE FROM ids WHERE seen_us < ?", (self.clock_us - self.max_age_us,))
            excess = int(self._db.execute("SELECT count() FROM ids").fetchone()[0]) - self.max_ids
            if excess > 0:
                self._db.execute("DELETE FROM ids WHERE id IN (SELECT id FROM ids ORDER BY seen_us LIMIT ?)", (excess,))
            self.put("clock_us", str(self.clock_us))
        self._pending.clear()

    def drop_pending(self) -> None:
        self._pending.clear()

    def close(self) -> None:
        self._db.close()


def id_bytes(event_id: str) -> bytes:
    remembered = compact(event_id)
    return remembered if isinstance(remembered, bytes) else remembered.encode()
