"""What only the production backends can show (`make test-containers`): the topics replicated over
three Kafka brokers, and the DDL and the query path on a ClickHouse server over HTTP. The rest of the
integration suite runs against the same containers through the conftest fixtures."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from ringback.config import Settings
from ringback.runtime import clickhouse, kafka
from ringback.sql import run_sql
from tests import containers
from tests.conftest import REPO_ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.containers,
    pytest.mark.skipif(
        not containers.requested(),
        reason=f"needs {containers.BACKEND_VARIABLE}={containers.CONTAINERS} (make test-containers)",
    ),
]


async def test_topics_are_replicated_over_three_brokers(
    broker: containers.KafkaCluster, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(kafka_bootstrap=broker.bootstrap)
    assert settings.kafka_replication == containers.REPLICATION
    await kafka.ensure_topics(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        assert len(cluster["brokers"]) == containers.KAFKA_NODES
        (described,) = await admin.describe_topics([settings.topic_raw])
        partitions = described["partitions"]
        assert len(partitions) == settings.kafka_partitions
        for partition in partitions:
            assert (
                len(partition["replicas"]) == containers.REPLICATION and len(partition["isr"]) == containers.REPLICATION
            )
    finally:
        await admin.close()


def test_the_ddl_and_the_guarded_query_path_work_over_http(
    clickhouse_server: containers.ClickHouseServer, make_settings: Callable[..., Settings]
) -> None:
    client = clickhouse.connect(clickhouse_server.dsn)
    first = clickhouse.apply_ddl(client, REPO_ROOT / "schemas")
    assert clickhouse.apply_ddl(client, REPO_ROOT / "schemas") == first  # idempotent on a server too
    settings = make_settings(clickhouse_dsn=clickhouse_server.dsn)
    out = run_sql(settings, "SELECT count() AS n FROM ringback.events_dedup FORMAT JSONEachRow", "JSONEachRow")
    assert out.strip().startswith(b'{"n":')
