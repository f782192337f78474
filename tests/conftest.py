"""Shared test fixtures: the real embedded broker, the real embedded ClickHouse engine, settings."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ringback import config, logs
from ringback.config import Settings
from ringback.runtime.broker import EmbeddedBroker

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"

logs.configure("console", "warning")


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One real Kafka-protocol broker (Tansu) for the test session; tests use their own topics."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chDB allows one store per process: in-process tests share this one."""
    return tmp_path_factory.mktemp("clickhouse")


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings isolated per test: own topics, consumer groups and data directory."""

    def build(**overrides: object) -> Settings:
        suffix = uuid.uuid4().hex[:10]
        base = config.load(
            {
                "data_dir": str(tmp_path / "data"),
                "topic_raw": f"test.raw.{suffix}",
                "topic_normalized": f"test.normalized.{suffix}",
                "topic_dlq": f"test.dlq.{suffix}",
                "topic_ledger": f"test.ledger.{suffix}",
                "normalizer_group": f"test-normalizer-{suffix}",
                "sink_group": f"test-sink-{suffix}",
                "kafka_partitions": 2,
                "sink_batch_seconds": 0.2,
                "drain_timeout_s": 3,
                "port": 0,
            },
            environ={},
        )
        return base.replace(**overrides)

    return build
