"""The edge's journal heals a loss downstream: callbacks that stay unstored while later ones are stored
are published again — on the real broker, with progress messages as the normalizer and sink send them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ringback import metrics
from ringback.config import Settings
from ringback.edge.intake import Intake
from ringback.edge.publisher import Publisher
from ringback.runtime import kafka, progress
from ringback.runtime.broker import EmbeddedBroker
from ringback.runtime.raw import RawCallback, new_ingest_id
from tests.kafka_helpers import produce, read_topic

pytestmark = pytest.mark.integration


def raw(i: int) -> RawCallback:
    return RawCallback(
        "cdr-push",
        new_ingest_id(),
        time.time_ns() // 1000,
        "10.0.0.1",
        "application/json",
        b'{"cdr":[{"requestid":"m-%d"}]}' % i,
    )


async def until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_callbacks_lost_downstream_are_published_again(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        kafka_bootstrap=broker.bootstrap, edge_journal="on", journal_republish_after_s=1.0, kafka_partitions=1
    )
    await kafka.ensure_topics(settings)
    publisher = Publisher(settings)
    intake = Intake(settings, publisher, tmp_path / "journal")
    await publisher.start()
    await intake.start()
    try:
        republished_before = metrics.EDGE_REPUBLISHED._value.get()
        for i in range(5):
            await intake.accept(raw(i))
        await until(lambda: intake.unpublished_records == 0)
        for i in range(5, 10):
            await intake.accept(raw(i))
        await until(lambda: intake.unpublished_records == 0)
        first_later = next(
            i for i, f in enumerate(intake.flights) if sum(g.records for g in list(intake.flights)[:i]) >= 5
        )
        later = list(intake.flights)[first_later:]
        low = min(span[0] for f in later for span in f.spans.values())
        high = max(span[1] for f in later for span in f.spans.values())
        # A normalizer claims (and a sink stores) only the later five callbacks: the first five were lost.
        claim = progress.claim_message(settings.topic_raw, {0: (low, high + 1)}, {})
        await produce(broker.bootstrap, settings.topic_progress, [(None, claim, [])])
        await until(lambda: metrics.EDGE_REPUBLISHED._value.get() > republished_before)
        records = await read_topic(broker.bootstrap, settings.topic_raw, expected=15)
        bodies = [r.value for r in records]
        assert all(bodies.count(b'{"cdr":[{"requestid":"m-%d"}]}' % i) == 2 for i in range(5))  # published again
        assert all(bodies.count(b'{"cdr":[{"requestid":"m-%d"}]}' % i) == 1 for i in range(5, 10))
        # Once everything is claimed, the journal lets go of all of it.
        last = max(r.offset for r in records)
        await produce(
            broker.bootstrap,
            settings.topic_progress,
            [(None, progress.claim_message(settings.topic_raw, {0: (0, last + 1)}, {}), [])],
        )
        assert intake.journal is not None
        await until(lambda: intake.journal.is_empty)
    finally:
        await intake.stop()
        await publisher.stop()
