"""`ringback tail` against the real broker: from the beginning, from a time, from the end; filters; the
broker found through a running pipeline's run file or given with --kafka-bootstrap."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ringback.normalizer.step import ordering_key
from ringback.runtime import runfiles
from ringback.runtime.avro import EventCodec
from ringback.runtime.broker import EmbeddedBroker
from tests.conftest import REPO_ROOT
from tests.pipeline import ringback

pytestmark = pytest.mark.integration
CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")
TAIL_TIMEOUT_S = 60
#: A tail from the end is sent a new event this often until it shows one.
NEXT_EVERY_S = 1.0


@dataclass(frozen=True)
class Published:
    event_id: str
    event_type: str
    tenant: str
    ago: timedelta


EARLIER = [
    Published("old-cdr", "call.cdr", "acme", timedelta(hours=2)),
    Published("sms", "sms.delivery_report", "", timedelta(minutes=30)),
    Published("state", "call.state", "beta", timedelta(minutes=5)),
    Published("new-cdr", "call.cdr", "acme", timedelta(minutes=1)),
]


def event(spec: Published, now: datetime) -> dict[str, Any]:
    values = CODEC.blank_event()
    values.update(
        event_id=spec.event_id,
        event_type=spec.event_type,
        source="cdr_push",
        route="cdr-push",
        ingest_id=spec.event_id,
        received_at=now - spec.ago,
        request_id=spec.event_id,
        status="answered",
        tenant=spec.tenant,
        charge=Decimal("0.060000"),
        currency="CNY",
        normalizer_version="0.1.0",
    )
    return values


async def publish(bootstrap: str, topic: str, specs: list[Published], now: datetime) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for spec in specs:
            values = event(spec, now)
            headers = [("tenant", spec.tenant.encode())] if spec.tenant else []
            at_ms = int((now - spec.ago).timestamp() * 1000)
            await (
                await producer.send(
                    topic, CODEC.encode(values), key=ordering_key(values), headers=headers, timestamp_ms=at_ms
                )
            )
    finally:
        await producer.stop()


@dataclass
class Topic:
    bootstrap: str
    name: str
    now: datetime


async def new_topic(bootstrap: str) -> str:
    name = f"test.normalized.{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 2, 1)])
    finally:
        await admin.close()
    return name


@pytest.fixture(scope="module")
def topic(broker: EmbeddedBroker) -> Iterator[Topic]:
    """The earlier events, on a topic nothing else writes to."""
    now = datetime.now(UTC)

    async def create() -> str:
        name = await new_topic(broker.bootstrap)
        await publish(broker.bootstrap, name, EARLIER, now)
        return name

    yield Topic(broker.bootstrap, asyncio.run(create()), now)


def tail(topic: Topic, *args: str) -> list[str]:
    done = subprocess.run(
        ringback("tail", "--kafka-bootstrap", topic.bootstrap, "--topic-normalized", topic.name, "--no-follow", *args),
        capture_output=True,
        timeout=TAIL_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().splitlines()


def ids(lines: list[str]) -> list[str]:
    return sorted(json.loads(line)["event_id"] for line in lines)


def test_from_the_beginning_every_event_as_json(topic: Topic) -> None:
    lines = tail(topic, "--from", "beginning", "--json")
    assert ids(lines) == sorted(spec.event_id for spec in EARLIER)
    first = json.loads(lines[0])
    assert first["charge"] == "0.060000" and first["received_at"].endswith("Z")


def test_from_a_time_ago_with_filters(topic: Topic) -> None:
    assert ids(tail(topic, "--from", "-1h", "--json")) == ["new-cdr", "sms", "state"]
    assert ids(tail(topic, "--from", "-1h", "--json", "--type", "call.*", "--tenant", "acme")) == ["new-cdr"]
    assert ids(tail(topic, "--from", "beginning", "--json", "--tenant", "-")) == ["sms"]
    assert len(tail(topic, "--from", "beginning", "--json", "--max", "2")) == 2


def test_from_an_iso_time_through_the_run_file_of_a_pipeline(topic: Topic, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    runfiles.write(
        data_dir / "run", "run", {"kafka_bootstrap": topic.bootstrap}
    )  # as `ringback run` does (our pid: alive)
    since = (topic.now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = subprocess.run(
        ringback("tail", "--data-dir", str(data_dir), "--topic-normalized", topic.name, "--no-follow", "--from", since),
        capture_output=True,
        timeout=TAIL_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert sorted(line.split("  ")[1] for line in lines) == ["call.cdr", "call.state"]
    assert all(line.endswith(("new-cdr", "state")) for line in lines)


def test_from_the_end_only_what_comes_next(broker: EmbeddedBroker) -> None:
    """On a topic of its own, with the earlier events on it. Until the tail has placed itself at the end,
    what is published may come before its start; so a new event is published every NEXT_EVERY_S until the
    tail shows one, which must be one of them, never an earlier one."""
    now = datetime.now(UTC)

    async def create() -> str:
        name = await new_topic(broker.bootstrap)
        await publish(broker.bootstrap, name, EARLIER, now)
        return name

    topic = Topic(broker.bootstrap, asyncio.run(create()), now)
    following = subprocess.Popen(
        ringback(
            "tail", "--kafka-bootstrap", topic.bootstrap, "--topic-normalized", topic.name, "--json", "--max", "1"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + TAIL_TIMEOUT_S
    sent = 0
    try:
        while following.poll() is None and time.monotonic() < deadline:
            sent += 1
            next_event = Published(f"next-{sent}", "call.cdr", "", timedelta(0))
            asyncio.run(publish(topic.bootstrap, topic.name, [next_event], datetime.now(UTC)))
            try:
                following.wait(NEXT_EVERY_S)
            except subprocess.TimeoutExpired:
                continue
        out, err = following.communicate(timeout=TAIL_TIMEOUT_S)
    finally:
        following.kill()
    assert following.returncode == 0, err.decode()
    (shown,) = ids(out.decode().splitlines())
    assert shown.startswith("next-"), shown


def test_without_a_running_pipeline_it_says_what_to_give(tmp_path: Path) -> None:
    done = subprocess.run(
        ringback("tail", "--data-dir", str(tmp_path / "nothing")), capture_output=True, timeout=TAIL_TIMEOUT_S
    )
    assert done.returncode == 2 and b"--kafka-bootstrap" in done.stderr
