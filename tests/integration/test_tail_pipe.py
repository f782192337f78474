"""`ringback tail | head`: a reader that goes away ends tail quietly, exit 0, like other Unix tools."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from ringback.config import Settings
from ringback.runtime import kafka
from ringback.runtime.avro import EventCodec
from ringback.runtime.broker import EmbeddedBroker
from tests.conftest import REPO_ROOT
from tests.kafka_helpers import produce
from tests.pipeline import ringback

pytestmark = pytest.mark.integration

#: Lines enough to fill a pipe's buffer (64 KiB) several times: tail must still be writing when the
#: reader leaves.
EVENTS = 3000
TAIL_WAIT_S = 120


def encoded_events(codec: EventCodec, count: int) -> list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
    messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []
    for index in range(count):
        event = codec.blank_event()
        event.update(
            event_id=f"{index:032x}",
            event_type="sms.delivery",
            source="tencent_sms_status",
            route="tencent-sms-status",
            ingest_id=f"i{index}",
            received_at=datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
            status="delivered",
            request_id=f"req-{index}",
            normalizer_version="0.1.0",
        )
        messages.append((f"sms:{index}".encode(), codec.encode(event), []))
    return messages


async def test_tail_into_a_reader_that_leaves_ends_quietly(
    broker: EmbeddedBroker, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(kafka_bootstrap=broker.bootstrap)
    await kafka.ensure_topics(settings)
    await produce(
        broker.bootstrap, settings.topic_normalized, encoded_events(EventCodec.from_dir(REPO_ROOT / "schemas"), EVENTS)
    )
    tail = subprocess.Popen(
        ringback(
            "tail",
            "--from",
            "beginning",
            "--no-follow",
            "--kafka-bootstrap",
            broker.bootstrap,
            "--topic-normalized",
            settings.topic_normalized,
            "--data-dir",
            str(settings.data_path),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert tail.stdout is not None and tail.stderr is not None
    first = tail.stdout.readline()
    tail.stdout.close()  # what `head -1` does once it has its line
    stderr = tail.stderr.read()
    code = tail.wait(timeout=TAIL_WAIT_S)
    assert b"sms.delivery" in first
    assert code == 0, stderr.decode(errors="replace")
    assert stderr == b"", stderr.decode(errors="replace")
