"""Group commit: appends from concurrent requests grouped into one journal write and one fsync.

The writes run on the journal's thread, so the event loop never waits on the disk. The loop hands each
batch to a method of its own, so nothing of a batch (bodies, futures, exceptions with their frames)
stays referenced while it waits for the next one. In journal mode the callbacks of a group are counted
as accepted on that same thread, right after their frames are durable (see
:mod:`ringback.edge.accepted`): never read back from the journal while the edge runs.

A disk that fails (full, or an I/O error) fails the whole group with a retryable error, and the journal
is not accepting until the disk has room again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor

from ringback import logs
from ringback.edge.accepted import AcceptedCounts
from ringback.edge.journal import Journal, JournalFull
from ringback.runtime.raw import RawCallback

GROUP_COMMIT_MAX = 1000

log = logs.get(__name__)

Pending = tuple[bytes, RawCallback, asyncio.Future[None]]


class NotDurable(RuntimeError):
    """Neither the broker nor the journal could take the callback: the vendor must retry."""


class GroupCommit:
    """The journal's only writer.

    Promises: ``append(raw)`` returns only once ``raw`` is a frame of the journal, fsync'd (and, given
    ``accepted``, counted there); otherwise it raises ``NotDurable`` and no request of its group heard
    success. ``appended`` is set after every group written; ``accepting`` is False while the journal
    refuses (full since the last trim, or a disk without room for the group that failed).
    Expects: ``run()`` running as one task; ``made_room()`` called whenever the journal let go of
    something; ``disk`` is the journal's one thread, shared with everything else that touches it.
    """

    def __init__(
        self, journal: Journal, disk: Executor, accepted: AcceptedCounts | None, written: Callable[[], None]
    ) -> None:
        self.journal = journal
        self.accepted = accepted
        self.appended = asyncio.Event()
        self._disk = disk
        self._written = written
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        self._refused_since_trim = False  # the journal turned a callback away and has not let go of any since
        self._disk_needs: int | None = None  # the disk failed an append of this many bytes; None: it writes

    @property
    def accepting(self) -> bool:
        return self.refusal is None

    @property
    def refusal(self) -> str | None:
        """Why the journal takes no callback now (None while it does), in words for readiness."""
        if self._disk_needs is not None and not self._disk_has_room(self._disk_needs):
            return f"the journal's disk has no room (a group of {self._disk_needs} bytes could not be written)"
        if self._refused_since_trim or self.journal.untrimmed_bytes >= self.journal.max_bytes:
            return (
                f"the journal is full ({self.journal.untrimmed_bytes} of {self.journal.max_bytes} bytes): "
                "waiting until what it holds is published and stored"
            )
        return None

    def _disk_has_room(self, needed: int) -> bool:
        try:
            return self.journal.free_bytes() >= needed
        except OSError:
            return False

    def made_room(self) -> None:
        self._refused_since_trim = False

    async def append(self, raw: RawCallback) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((raw.to_bytes(), raw, done))  # unbounded (the in-flight budget bounds it): no await
        try:
            await done
        except JournalFull as exc:
            raise NotDurable(f"journal cannot take it: {exc}") from None

    async def run(self) -> None:
        while True:
            first = await self._queue.get()
            await self._write_batch(first)

    async def _write_batch(self, first: Pending) -> None:
        batch = [first]
        while not self._queue.empty() and len(batch) < GROUP_COMMIT_MAX:
            batch.append(self._queue.get_nowait())
        payloads = [payload for payload, _, _ in batch]
        raws = [raw for _, raw, _ in batch]
        try:
            await asyncio.get_running_loop().run_in_executor(self._disk, self._append_counted, payloads, raws)
        except Exception as exc:  # whatever it was, not one request of the batch may hear success
            self._refused(exc, sum(len(p) for p in payloads))
            reason = f"{type(exc).__name__}: {exc}"
            for _, _, done in batch:
                if not done.done():  # a fresh error each: no traceback, so no frame keeps the bodies alive
                    done.set_exception(JournalFull(reason))
        else:
            if self._disk_needs is not None:
                log.info("journal writes again")
                self._disk_needs = None
            for _, _, done in batch:
                if not done.done():
                    done.set_result(None)
            self.appended.set()
        self._written()

    def _append_counted(self, payloads: list[bytes], raws: list[RawCallback]) -> None:
        """On the journal's thread: append, then count what the journal took."""
        if self.accepted is None:
            self.journal.append(payloads)
            return
        start = self.journal.end
        end = self.journal.append(payloads)
        self.accepted.took(start, end, raws)

    def _refused(self, exc: Exception, size: int) -> None:
        if isinstance(exc, JournalFull):
            self._refused_since_trim = True
            return
        if self._disk_needs is None:
            log.error(
                "journal cannot write: answering retryable failures until the disk has room",
                error=repr(exc),
                directory=str(self.journal.directory),
            )
        self._disk_needs = size
