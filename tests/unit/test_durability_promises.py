"""What the delivery guarantees (docs/guarantees.md) say of the edge's journal and of every producer, checked on the
real objects: concurrent callbacks share one journal write and one fsync; every producer waits for
acks=all; a failure's message is kept to its bound."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from ringback import config
from ringback.config import Settings
from ringback.edge import journal as journal_module
from ringback.edge.intake import Intake
from ringback.edge.publisher import Publisher
from ringback.runtime import kafka
from ringback.runtime.dead_letter import MAX_MESSAGE_CHARS, Failure
from ringback.runtime.ports import free_port
from ringback.runtime.raw import RawCallback, new_ingest_id

CONCURRENT = 50


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    """An external broker that does not answer: the edge's journal takes every callback (spool mode)."""
    return config.load(
        {"data_dir": str(tmp_path / "data"), "kafka_bootstrap": f"127.0.0.1:{free_port()}", **overrides},
        environ={},
    )


def callback(i: int) -> RawCallback:
    return RawCallback(
        route="tencent/sms-status",
        ingest_id=new_ingest_id(),
        received_at_us=1_763_700_000_000_000,
        remote_addr="10.0.0.1",
        content_type="application/json",
        body=b'[{"sid":"%d"}]' % i,
    )


async def test_concurrent_callbacks_share_one_journal_write_and_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = Intake(settings_for(tmp_path), Publisher(settings_for(tmp_path)), tmp_path / "journal")
    await intake.start()
    try:
        assert await intake.accept(callback(-1)) == "spool"  # the journal's first segment exists from here on
        assert intake.journal is not None
        appends: list[int] = []
        fsyncs: list[int] = []
        real_append, real_fsync = intake.journal.append, os.fsync

        def append(payloads: list[bytes]) -> Any:
            appends.append(len(payloads))
            return real_append(payloads)

        def fsync(fd: int) -> None:
            fsyncs.append(fd)
            real_fsync(fd)

        monkeypatch.setattr(intake.journal, "append", append)
        monkeypatch.setattr(journal_module.os, "fsync", fsync)
        where = await asyncio.gather(*(intake.accept(callback(i)) for i in range(CONCURRENT)))
        assert where == ["spool"] * CONCURRENT  # each answered only once durable
        assert appends == [CONCURRENT] and len(fsyncs) == 1, (appends, fsyncs)
        assert intake.journal.untrimmed_records == CONCURRENT + 1
    finally:
        await intake.stop()


async def test_every_producer_waits_for_acks_from_all_in_sync_replicas(tmp_path: Path) -> None:
    """The one way ringback makes a producer (the edge's publisher, the normalizer, the sink's marks):
    acks=all, whatever else a caller overrides."""
    settings = settings_for(tmp_path)
    for overrides in ({}, {"max_request_size": 100_000}, {"linger_ms": 0}):
        producer = kafka.producer(settings, **overrides)
        assert producer.client is not None
        assert producer._sender._acks == -1, overrides  # aiokafka's spelling of acks=all


@pytest.mark.parametrize(("length", "kept"), [(MAX_MESSAGE_CHARS, MAX_MESSAGE_CHARS), (MAX_MESSAGE_CHARS + 1, None)])
def test_a_failure_message_is_kept_to_300_characters(length: int, kept: int | None) -> None:
    message = "é" * length
    bounded = Failure(0, "invalid_json", message).bounded().message
    if kept is not None:
        assert bounded == message
    else:
        assert len(bounded) == MAX_MESSAGE_CHARS == 300 and bounded == message[: MAX_MESSAGE_CHARS - 1] + "…"
