"""The billing consumer against the real broker: commit after processing, the dedupe rule across
restarts, and what a job is told about each message (tenant, key, headers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ringback.consumer import Batch, NormalizedConsumer, UndecodableEvent
from ringback.normalizer.step import ordering_key
from ringback.runtime.avro import EventCodec
from ringback.runtime.broker import EmbeddedBroker
from tests.conftest import REPO_ROOT
from tests.kafka_helpers import committed_offsets, produce

pytestmark = pytest.mark.integration
CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")
PARTITIONS = 2
START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
#: The embedded broker does not act on a member leaving: a short session lets the next run of a job join quickly.
QUICK_REJOIN = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 500}


class JobFailed(RuntimeError):
    pass


def event(n: int, charge: str = "1.000000", minute: int = 0) -> dict[str, Any]:
    values = CODEC.blank_event()
    values.update(
        event_id=f"id-{n}",
        event_type="call.cdr",
        source="cdr_push",
        route="cdr-push",
        ingest_id=f"ingest-{n}-{minute}",
        received_at=START + timedelta(minutes=minute),
        request_id=f"req-{n}",
        app_id="app",
        status="answered",
        charge=Decimal(charge),
        currency="CNY",
        duration_s=60,
        normalizer_version="0.1.0",
    )
    return values


async def publish(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    await produce(bootstrap, topic, [(ordering_key(e), CODEC.encode(e), []) for e in events])


async def new_topic(bootstrap: str) -> str:
    topic = f"test.normalized.{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    return topic


class Job:
    """Records what it is given; fails on the batch numbered ``fail_on`` (1-based)."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[Batch] = []
        self.fail_on = fail_on

    def __call__(self, batch: Batch) -> None:
        if self.fail_on is not None and len(self.batches) + 1 == self.fail_on:
            raise JobFailed("the job could not write its results")
        self.batches.append(batch)

    def ids(self, kind: str = "events") -> list[str]:
        return sorted(d.event_id for b in self.batches for d in getattr(b, kind))

    def offsets(self) -> dict[int, int]:
        done: dict[int, int] = {}
        for batch in self.batches:
            for (_, partition), offset in batch.next_offsets.items():
                done[partition] = max(done.get(partition, 0), offset)
        return done


async def test_offsets_are_committed_only_for_batches_the_job_finished(broker: EmbeddedBroker) -> None:
    topic = await new_topic(broker.bootstrap)
    group = f"billing-{uuid.uuid4().hex[:8]}"
    await publish(broker.bootstrap, topic, [event(n) for n in range(6)])

    failing = Job(fail_on=2)
    with pytest.raises(JobFailed):
        await NormalizedConsumer(broker.bootstrap, group, topic=topic, max_batch=2, kafka_options=QUICK_REJOIN).run(
            failing, until_caught_up=True
        )
    assert len(failing.batches) == 1
    committed = await committed_offsets(broker.bootstrap, group, topic)
    assert {
        p: o for p, o in committed.items() if o
    } == failing.offsets()  # the finished batch, nothing of the failed one

    rest = Job()
    summary = await NormalizedConsumer(broker.bootstrap, group, topic=topic, kafka_options=QUICK_REJOIN).run(
        rest, until_caught_up=True
    )
    assert sorted(failing.ids() + rest.ids()) == [f"id-{n}" for n in range(6)]  # nothing lost, nothing twice
    assert summary.remembered == len(failing.ids())  # re-read only to remember their ids
    assert sum((await committed_offsets(broker.bootstrap, group, topic)).values()) == 6


async def test_the_first_copy_wins_also_after_a_restart(broker: EmbeddedBroker) -> None:
    topic = await new_topic(broker.bootstrap)
    group = f"billing-{uuid.uuid4().hex[:8]}"
    await publish(broker.bootstrap, topic, [event(1), event(2), event(1, minute=3)])  # a resend within the run

    first = Job()
    await NormalizedConsumer(broker.bootstrap, group, topic=topic, kafka_options=QUICK_REJOIN).run(
        first, until_caught_up=True
    )
    assert first.ids() == ["id-1", "id-2"] and first.ids("duplicates") == ["id-1"]

    # After the restart: a resend of id-1, a resend of id-2 with another amount, and a new event of a tenant.
    await publish(broker.bootstrap, topic, [event(1, minute=30), event(2, charge="2.500000", minute=31)])
    tenant_event = {**event(3, minute=32), "tenant": "acme"}
    await produce(
        broker.bootstrap, topic, [(ordering_key(tenant_event), CODEC.encode(tenant_event), [("tenant", b"acme")])]
    )
    second = Job()
    summary = await NormalizedConsumer(broker.bootstrap, group, topic=topic, kafka_options=QUICK_REJOIN).run(
        second, until_caught_up=True
    )
    assert second.ids() == ["id-3"]
    assert second.ids("duplicates") == ["id-1"]
    assert second.ids("conflicts") == ["id-2"]
    (conflict,) = [d for b in second.batches for d in b.conflicts]
    assert conflict.event["charge"] == Decimal("2.500000")  # set aside: the first copy's 1.00 stands
    assert summary.remembered == 3
    (new,) = [d for b in second.batches for d in b.events]
    assert new.tenant == "acme" and new.key == b"cdr_push:req-3" and dict(new.headers) == {"tenant": b"acme"}


async def test_a_message_of_an_unknown_schema_stops_the_job_uncommitted(broker: EmbeddedBroker) -> None:
    topic = await new_topic(broker.bootstrap)
    group = f"billing-{uuid.uuid4().hex[:8]}"
    await produce(broker.bootstrap, topic, [(b"k", b"\xc3\x01" + b"\x11" * 8 + b"body", [])])
    job = Job()
    with pytest.raises(UndecodableEvent, match="unknown writer schema"):
        await NormalizedConsumer(broker.bootstrap, group, topic=topic, kafka_options=QUICK_REJOIN).run(
            job, until_caught_up=True
        )
    assert job.batches == [] and not any((await committed_offsets(broker.bootstrap, group, topic)).values())
