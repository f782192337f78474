"""Consumers stop in order with the broker gone (a role's orderly stop after the broker was killed)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import pytest

from ringback.config import Settings
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


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
        assert own_broker.process is not None
        os.kill(own_broker.process.pid, signal.SIGKILL)
        await asyncio.sleep(1.0)  # the clients' background fetches find the broker gone
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
