"""The journal's publisher sends each batch to one partition of the raw topic, the next batch to the
next: one produce request per batch, and every partition used in turn."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from ringback.config import Settings
from ringback.edge.publisher import Publisher
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker
from ringback.runtime.raw import RawCallback
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.integration

BATCHES = 6
PER_BATCH = 40


def raw(batch: int, n: int) -> RawCallback:
    return RawCallback(
        "tencent/sms-status",
        f"01PUBLISHER{batch:03d}{n:012d}",
        1_765_000_000_000_000 + n,
        "10.0.0.1",
        "application/json",
        f'[{{"sid": "b{batch}-{n}"}}]'.encode(),
    )


async def test_each_batch_goes_to_one_partition_and_the_partitions_take_turns(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(kafka_bootstrap=broker.bootstrap)
    await kafka.ensure_topics(settings)
    publisher = Publisher(settings)
    await publisher.start()
    try:
        batches = [[raw(b, n) for n in range(PER_BATCH)] for b in range(BATCHES)]
        spans = [(await publisher.publish_all(batch)).spans for batch in batches]
    finally:
        await publisher.stop()

    used = [{partition for partition, _, _ in batch_spans} for batch_spans in spans]
    assert all(len(partitions) == 1 for partitions in used), used  # one partition per batch
    turns = [next(iter(partitions)) for partitions in used]
    assert set(turns) == set(range(settings.kafka_partitions))  # each partition in turn
    assert all(a != b for a, b in itertools.pairwise(turns))

    records = await read_topic(settings.kafka_bootstrap, settings.topic_raw, expected=BATCHES * PER_BATCH)
    by_id = {r.key.decode(): r.partition for r in records}
    for batch, partition in zip(batches, turns, strict=True):
        assert {by_id[r.ingest_id] for r in batch} == {partition}
        got = sorted((r for r in records if r.partition == partition), key=lambda r: r.offset)
        mine = [r.value for r in got if r.key.decode() in {x.ingest_id for x in batch}]
        assert mine == [r.body for r in batch]  # in the batch's order
