"""Shared test fixtures: the real embedded broker, the real embedded ClickHouse engine, settings.

With ``RINGBACK_TEST_BACKEND=containers`` (``make test-containers``) the same tests run against the
production backends instead: a 3-node Kafka cluster and a ClickHouse server over HTTP, started with
testcontainers (tests/containers.py)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ringback import config, logs
from ringback.config import Settings
from ringback.runtime.broker import EmbeddedBroker
from tests import containers

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"

logs.configure("console", "warning")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--shuffle",
        metavar="SEED",
        default=None,
        help="Run the test modules, and the tests within each, in an order shuffled by SEED ('random': any, shown "
        "in the header): no test may depend on another's order or leftovers.",
    )


#: The modules that take longest (measured), started first so that parallel workers finish together
#: (``make test`` runs modules on several workers; each module stays on one worker).
LONGEST_MODULES = (
    "test_crash.py",
    "test_ledger_kills.py",
    "test_recycle_gate.py",
    "test_sink.py",
    "test_faults.py",
    "test_pipeline_e2e.py",
    "test_broker_stop.py",
    "test_billing_incarnations.py",
    "test_sql_readonly.py",
    "test_tenants_pipeline.py",
    "test_bounded_numbers.py",
    "test_analyst_views.py",
    "test_replay.py",
    "test_analyst_access.py",
    "test_disk_full.py",
)


def shuffle_seed(config: pytest.Config) -> str | None:
    """The --shuffle seed; 'random' is drawn once (by the controller when tests run on workers, which
    must all collect the same order)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        seed: str | None = workerinput.get("shuffle_seed")
        return seed
    seed = config.getoption("--shuffle")
    if seed == "random":
        seed = str(random.SystemRandom().randrange(10**6))
        config.option.shuffle = seed
    return seed


class ShuffleForWorkers:
    """Hands the controller's seed to every worker (pytest-xdist)."""

    @staticmethod
    def pytest_configure_node(node: Any) -> None:
        node.workerinput["shuffle_seed"] = shuffle_seed(node.config)


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(ShuffleForWorkers(), "ringback-shuffle-for-workers")


def pytest_report_header(config: pytest.Config) -> str | None:
    seed = shuffle_seed(config)
    return f"tests shuffled: --shuffle {seed}" if seed else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules grouped, the longest first. With --shuffle: modules in a shuffled order, each module's
    tests shuffled among themselves (a module's shared fixtures are still set up once)."""
    by_module: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_module.setdefault(str(item.path), []).append(item)
    modules = list(by_module)
    seed = shuffle_seed(config)
    if seed is None:
        rank = {name: index for index, name in enumerate(LONGEST_MODULES)}
        modules.sort(key=lambda module: rank.get(Path(module).name, len(rank)))
    else:
        rng = random.Random(seed)
        rng.shuffle(modules)
        for module in modules:
            rng.shuffle(by_module[module])
    items[:] = [item for module in modules for item in by_module[module]]


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
