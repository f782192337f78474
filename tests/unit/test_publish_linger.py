"""The journal's publisher lingers after a batch that was not full, so what arrives meanwhile goes in
the next batch (fewer, larger produce requests); after a full batch, a backlog, it does not wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from ringback.config import Settings
from ringback.edge import journal_publisher
from ringback.edge.intake import Intake
from ringback.edge.journal_publisher import PUBLISH_BATCH, PUBLISH_LINGER_S, JournalPublisher
from ringback.edge.publisher import Publisher
from ringback.runtime.raw import RawCallback, new_ingest_id


def frames(count: int) -> list[bytes]:
    now_us = time.time_ns() // 1000
    return [
        RawCallback("cdr-push", new_ingest_id(), now_us, "10.0.0.1", "application/json", b'{"i":%d}' % i).to_bytes()
        for i in range(count)
    ]


async def lingered(publisher: JournalPublisher) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await publisher._linger()
    return loop.time() - started


async def test_a_batch_short_of_full_makes_the_next_wait_and_a_full_one_does_not(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(edge_journal="on", kafka_bootstrap="127.0.0.1:9")  # no broker: every publish fails
    intake = Intake(settings, Publisher(settings), tmp_path / "journal")
    assert intake.journal is not None and intake.journal_publisher is not None
    publisher = intake.journal_publisher
    publisher.start()
    try:
        assert publisher._last_batch_at == float("-inf")  # nothing published yet: nothing to wait for

        intake.journal.append(frames(3))
        assert not await publisher._publish_batch()  # read, then refused by the absent broker
        assert await lingered(publisher) >= PUBLISH_LINGER_S * 0.9  # a sleep never ends early

        intake.journal.append(frames(PUBLISH_BATCH))
        publisher.published = intake.journal.trimmed
        assert not await publisher._publish_batch()  # a full batch of the backlog
        assert publisher._last_batch_at == float("-inf")  # so the next is published without waiting
    finally:
        await intake.stop()


def test_the_linger_is_short_beside_the_receive_to_queryable_budget() -> None:
    assert 0 < journal_publisher.PUBLISH_LINGER_S <= 0.05
