"""The production backends for the integration suite, started with testcontainers (`make test-containers`):
an Apache Kafka cluster in KRaft mode (3 nodes, each broker and controller; topics replicated 3 times,
2 in sync) and a ClickHouse server reached over HTTP, as the roles reach them in production.

``RINGBACK_TEST_BACKEND=containers`` makes tests/conftest.py use them: the ``broker`` fixture then
yields the cluster (its ``bootstrap`` lists the three brokers) and settings built by ``make_settings``
replicate topics 3 times and take the server's HTTP DSN wherever a test asks for the embedded store.
Without a container engine, every test that needs them is skipped with one line saying why."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

BACKEND_VARIABLE = "RINGBACK_TEST_BACKEND"
CONTAINERS = "containers"
KAFKA_IMAGE = os.environ.get("RINGBACK_TEST_KAFKA_IMAGE", "apache/kafka:3.9.1")
CLICKHOUSE_IMAGE = os.environ.get("RINGBACK_TEST_CLICKHOUSE_IMAGE", "clickhouse/clickhouse-server:25.8")
KAFKA_NODES = 3
REPLICATION = 3
MIN_IN_SYNC = 2
#: A callback may be max_body_bytes (1 MiB) plus headers and envelope (as in deploy/docker-compose.yml).
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
INTERNAL_PORT, CONTROLLER_PORT, EXTERNAL_PORT = 19092, 9093, 9092
CLICKHOUSE_HTTP_PORT = 8123
START_TIMEOUT_S = 180


def requested() -> bool:
    return os.environ.get(BACKEND_VARIABLE, "") == CONTAINERS


def engine_missing() -> str | None:
    """Why no container engine can be used here, or None when one answers."""
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:  # any failure means: no engine to use
        return (
            f"no container engine answers ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160] if str(exc) else 'no detail'})"
        )
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cluster_id() -> str:
    """A KRaft cluster id: a UUID in URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class KafkaCluster:
    """Three KRaft nodes on a network of their own; ``bootstrap`` is what the roles are given."""

    bootstrap: str
    containers: list[Any]

    def __getattr__(self, name: str) -> Any:
        # What the embedded broker offers besides its address (its process, stop, start) a cluster has not:
        # a test that uses it is skipped. Any other name is a mistake, and fails like one.
        if name in EMBEDDED_BROKER_ONLY:
            pytest.skip(f"needs the embedded broker ({name}): it stops or inspects the broker process")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


#: The embedded broker's own attributes besides ``bootstrap`` (tests/unit/test_containers_backend.py keeps
#: this in step with ringback.runtime.broker.EmbeddedBroker).
EMBEDDED_BROKER_ONLY = frozenset(
    {"port", "process", "start", "stop", "spawn", "wait_ready", "owner_dir", "tied_to_parent"}
)


@contextlib.contextmanager
def kafka_cluster() -> Iterator[KafkaCluster]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.docker_client import DockerClient
    from testcontainers.core.network import Network
    from testcontainers.core.waiting_utils import wait_for_logs

    host = DockerClient().host()
    ports = [_free_port() for _ in range(KAFKA_NODES)]
    voters = ",".join(f"{i}@kafka-{i}:{CONTROLLER_PORT}" for i in range(1, KAFKA_NODES + 1))
    cluster_id = _cluster_id()
    with Network() as network, contextlib.ExitStack() as stack:
        containers = []
        for node, port in enumerate(ports, start=1):
            container = (
                DockerContainer(KAFKA_IMAGE)
                .with_network(network)
                .with_network_aliases(f"kafka-{node}")
                .with_bind_ports(EXTERNAL_PORT, port)
                .with_envs(
                    KAFKA_NODE_ID=str(node),
                    KAFKA_PROCESS_ROLES="broker,controller",
                    KAFKA_CONTROLLER_QUORUM_VOTERS=voters,
                    KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
                    KAFKA_LISTENERS=f"INTERNAL://:{INTERNAL_PORT},CONTROLLER://:{CONTROLLER_PORT},EXTERNAL://:{EXTERNAL_PORT}",
                    KAFKA_ADVERTISED_LISTENERS=f"INTERNAL://kafka-{node}:{INTERNAL_PORT},EXTERNAL://{host}:{port}",
                    KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
                    KAFKA_INTER_BROKER_LISTENER_NAME="INTERNAL",
                    CLUSTER_ID=cluster_id,
                    KAFKA_DEFAULT_REPLICATION_FACTOR=str(REPLICATION),
                    KAFKA_MIN_INSYNC_REPLICAS=str(MIN_IN_SYNC),
                    KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=str(REPLICATION),
                    KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=str(REPLICATION),
                    KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=str(MIN_IN_SYNC),
                    KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
                    KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
                    KAFKA_MESSAGE_MAX_BYTES=str(MAX_MESSAGE_BYTES),
                    KAFKA_REPLICA_FETCH_MAX_BYTES=str(MAX_MESSAGE_BYTES),
                )
            )
            containers.append(stack.enter_context(container))
        for container in containers:
            wait_for_logs(container, "Kafka Server started", timeout=START_TIMEOUT_S)
        yield KafkaCluster(",".join(f"{host}:{port}" for port in ports), containers)


@dataclass
class ClickHouseServer:
    dsn: str


@contextlib.contextmanager
def clickhouse_server() -> Iterator[ClickHouseServer]:
    from testcontainers.core.container import DockerContainer

    password = secrets.token_urlsafe(18)
    container = (
        DockerContainer(CLICKHOUSE_IMAGE)
        .with_exposed_ports(CLICKHOUSE_HTTP_PORT)
        .with_envs(CLICKHOUSE_USER="ringback", CLICKHOUSE_PASSWORD=password, CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT="1")
    )
    with container:
        host, port = container.get_container_host_ip(), container.get_exposed_port(CLICKHOUSE_HTTP_PORT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://{host}:{port}/ping", timeout=2) as reply:
                    if reply.read().strip() == b"Ok.":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"ClickHouse did not answer on {host}:{port}")
            time.sleep(0.5)
        yield ClickHouseServer(f"http://ringback:{password}@{host}:{port}/")
