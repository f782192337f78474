"""What the edge accepted, said on the ledger topic every ``ledger_interval_s`` (and at a stop).

Two kinds of counts: the journal's running totals (journal mode, see :mod:`ringback.edge.accepted`)
and the in-memory deltas of a ``Ledger`` (spool mode, and whatever else the edge counts there). A
message the broker did not take is said again with the next one.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor

from ringback.config import Settings
from ringback.edge.accepted import AcceptedCounts
from ringback.edge.publisher import Publisher
from ringback.runtime.kafka import BrokerError
from ringback.runtime.ledger import Ledger


class AcceptedLedger:
    """Promises: every count taken into ``ledger`` or ``accepted`` reaches the ledger topic at least
    once while the broker answers (totals: at least their latest value; deltas: exactly, as a message
    given back is merged into the next); ``say_all_again()`` makes every kept total go out again.
    Expects: ``run()`` as one task, ``flush()`` once more at a stop; ``disk`` is the journal's one
    thread (the totals are read and saved on it).
    """

    def __init__(
        self, settings: Settings, publisher: Publisher, ledger: Ledger, accepted: AcceptedCounts | None, disk: Executor
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.ledger = ledger
        self.accepted = accepted
        self._disk = disk

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ledger_interval_s)
            await self.flush()

    async def flush(self) -> None:
        await self._say_accepted()
        message = self.ledger.take()
        if message is None:
            return
        try:
            await asyncio.wait_for(
                self.publisher.publish_to(self.settings.topic_ledger, message), self.settings.publish_timeout_s
            )
        except (TimeoutError, BrokerError):
            self.ledger.restore(message)  # counted again in the next delta

    async def say_all_again(self) -> None:
        if self.accepted is not None:
            await asyncio.get_running_loop().run_in_executor(self._disk, self.accepted.say_all_again)

    async def _say_accepted(self) -> None:
        if self.accepted is None:
            return
        loop = asyncio.get_running_loop()
        message, keys = await loop.run_in_executor(self._disk, self.accepted.checkpoint, time.time())
        if message is None:
            return
        try:
            await asyncio.wait_for(
                self.publisher.publish_to(self.settings.topic_ledger, message), self.settings.publish_timeout_s
            )
        except (TimeoutError, BrokerError):
            await loop.run_in_executor(self._disk, self.accepted.give_back, keys)  # said with the next totals
