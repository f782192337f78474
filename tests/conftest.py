"""Shared test fixtures: the real embedded broker, the real embedded ClickHouse engine, settings.

With ``RINGBACK_TEST_BACKEND=containers`` (``make test-containers``) the same tests run against the
production backends instead: a 3-node Kafka cluster and a ClickHouse server over HTTP, started with
testcontainers (tests/containers.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ringback import config, logs
from ringback.config import Settings
from ringback.runtime.broker import EmbeddedBroker
from tests import containers

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"

logs.configure("console", "warning")


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker | containers.KafkaCluster]:
    """One real Kafka-protocol broker (Tansu) for the test session; tests use their own topics."""
    if containers.requested():
        yield from _kafka_cluster()
        return
    with EmbeddedBroker() as running:
        yield running


def _kafka_cluster() -> Iterator[containers.KafkaCluster]:
    reason = containers.engine_missing()
    if reason:
        pytest.skip(f"make test-containers: {reason}")
    with containers.kafka_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[containers.ClickHouseServer]:
    """A ClickHouse server in a container (only with RINGBACK_TEST_BACKEND=containers)."""
    reason = containers.engine_missing()
    if reason:
        pytest.skip(f"make test-containers: {reason}")
    with containers.clickhouse_server() as server:
        yield server


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chDB allows one store per process: in-process tests share this one."""
    return tmp_path_factory.mktemp("clickhouse")


@pytest.fixture
def make_settings(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Settings]:
    """Settings isolated per test: own topics, consumer groups and data directory. With the containers
    backend, topics are replicated like production's and the embedded store is the server."""

    def build(**overrides: object) -> Settings:
        if containers.requested():
            overrides = {"kafka_replication": containers.REPLICATION, **overrides}
            if str(overrides.get("clickhouse_dsn", "")).startswith("chdb://"):
                overrides["clickhouse_dsn"] = request.getfixturevalue("clickhouse_server").dsn
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
