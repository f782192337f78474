"""Letting go of the journal: the one way the edge moves its journal's trim position.

Used by the journal's publisher in spool mode (as soon as the broker has a batch) and by mending in
journal mode (once a flight is stored). A trim that could not be written is tried again by its caller,
and nothing is let go of until it is.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from concurrent.futures import Executor

from ringback import logs, metrics
from ringback.edge.accepted import AcceptedCounts
from ringback.edge.group_commit import GroupCommit
from ringback.edge.journal import Journal, Position
from ringback.runtime.memory import release_free_memory

log = logs.get(__name__)


class Trim:
    """Promises: ``__call__(end, records)`` lets go of the journal up to ``end`` (``records`` callbacks)
    and returns True; given ``accepted``, the counts are saved first, so the checkpoint covers every
    frame let go of. When the disk failed it returns False (logged once per failing episode) and nothing
    is let go of. After a trim the group commit hears room was made, and an emptied journal gives its
    memory back. Expects: ``end`` at a frame boundary the journal holds, never behind what was let go
    of; ``disk`` is the journal's one thread.
    """

    def __init__(
        self,
        journal: Journal,
        disk: Executor,
        commit: GroupCommit,
        accepted: AcceptedCounts | None,
        trimmed: Callable[[], None],
    ) -> None:
        self.journal = journal
        self.accepted = accepted
        self._disk = disk
        self._commit = commit
        self._trimmed = trimmed
        self._failing = False

    async def __call__(self, end: Position, records: int) -> bool:
        loop = asyncio.get_running_loop()
        try:
            if self.accepted is not None:  # never let go of a frame the saved counts do not cover
                await loop.run_in_executor(self._disk, self.accepted.count_and_save, time.time())
            await loop.run_in_executor(self._disk, self.journal.trim, end, records)
        except OSError as exc:
            if not self._failing:
                log.error("journal cannot move its trim position: trying again", error=repr(exc))
            self._failing = True
            return False
        if self._failing:
            log.info("journal trims again")
            self._failing = False
        self._commit.made_room()
        metrics.EDGE_JOURNAL_TRIMMED.inc(records)
        self._trimmed()
        if self.journal.is_empty:
            gc.collect()  # roles collect rarely (tune_gc): cycles that still hold bodies go now...
            await loop.run_in_executor(self._disk, release_free_memory)  # ...and the memory back to the system
        return True
