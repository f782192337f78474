"""Consumers stop in order with the broker gone (a role's orderly stop after the broker was killed)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import pytest

from ringback.config import Settings
from ringback.consumer import kafka as kit
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

#: Long enough for the clients' background fetches to find a killed broker gone.
NOTICE_S = 1.0


async def kill(broker: EmbeddedBroker) -> None:
    """Kill ``broker`` (no orderly stop) and give its clients time to notice."""
    assert broker.process is not None
    os.kill(broker.process.pid, signal.SIGKILL)
    await asyncio.sleep(NOTICE_S)


async def test_a_consumer_and_a_reader_stop_without_error_once_the_broker_is_killed(
    make_settings: Callable[..., Settings],
) -> None:
    with EmbeddedBroker() as own_broker:
        settings = make_settings(kafka_bootstrap=own_broker.bootstrap)
        await kafka.ensure_topics(settings)
        group = kafka.KafkaConsumer(settings, [settings.topic_raw], "stop-test")
        await group.start()
        await group.poll(200, 10)
        reader = await kafka.assigned_reader(settings, settings.topic_raw, from_end=True)
        await reader.poll(100)
        await kill(own_broker)
        await group.stop()  # aiokafka's fetcher lets its own tasks' cancellation out here (issue 647)
        await reader.stop()


async def test_cancelling_the_task_that_stops_a_consumer_still_cancels_it(
    make_settings: Callable[..., Settings],
) -> None:
    with EmbeddedBroker() as own_broker:
        settings = make_settings(kafka_bootstrap=own_broker.bootstrap)
        await kafka.ensure_topics(settings)
        reader = await kafka.assigned_reader(settings, settings.topic_raw, from_end=True)
        stopping = asyncio.create_task(reader.stop())
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping


async def test_the_consumer_kits_clients_stop_without_error_once_the_broker_is_killed(
    make_settings: Callable[..., Settings],
) -> None:
    """The billing jobs' kit (ringback.consumer) stops its group member and its reader the same way."""
    with EmbeddedBroker() as own_broker:
        settings = make_settings(kafka_bootstrap=own_broker.bootstrap)
        await kafka.ensure_topics(settings)
        member = kit.group_member(own_broker.bootstrap, "kit-stop-test", "earliest", {})
        reader = kit.plain_reader(own_broker.bootstrap, {})
        await member.start()
        await reader.start()
        member.subscribe([settings.topic_normalized])
        await member.getmany(timeout_ms=200)
        reader.assign([kit.TopicPartition(settings.topic_normalized, 0)])
        await reader.getmany(timeout_ms=100)
        await kill(own_broker)
        await kit.stop(member)
        await kit.stop(reader)


async def test_cancelling_the_task_that_stops_a_kit_client_still_cancels_it(
    make_settings: Callable[..., Settings],
) -> None:
    with EmbeddedBroker() as own_broker:
        reader = kit.plain_reader(own_broker.bootstrap, {})
        await reader.start()
        stopping = asyncio.create_task(kit.stop(reader))
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
