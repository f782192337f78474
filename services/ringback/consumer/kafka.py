"""The kit's only contact with aiokafka: the clients it opens, and the broker questions it asks them.

The other modules of ``ringback.consumer`` name the clients and records by the aliases below and call
the clients' own methods (``getmany``, ``seek``, ``committed``, …); none of them imports aiokafka.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from ringback.runtime.kafka import stopped_with_broker_gone

__all__ = ["Admin", "Consumer", "Record", "TopicPartition"]

Consumer: TypeAlias = AIOKafkaConsumer
Admin: TypeAlias = AIOKafkaAdminClient
Record: TypeAlias = ConsumerRecord[bytes, bytes]

POLL_TIMEOUT_MS = 500
#: How long to wait before asking again when the broker does not tell its cluster id (restarting).
INCARNATION_RETRY_S = 0.5
#: How long a reader waits for the topic to show up in the broker's metadata.
TOPIC_WAIT_S = 10.0
TOPIC_WAIT_STEP_S = 0.2
#: The consumer options an admin client takes too (how to reach and authenticate to the brokers).
ADMIN_OPTIONS = (
    "security_protocol",
    "ssl_context",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "sasl_kerberos_service_name",
    "sasl_kerberos_domain_name",
    "sasl_oauth_token_provider",
    "client_id",
    "request_timeout_ms",
    "connections_max_idle_ms",
    "metadata_max_age_ms",
)

log = logging.getLogger(__package__)


def group_member(bootstrap: str, group: str, start_at: str, options: Mapping[str, Any]) -> Consumer:
    """A member of consumer group ``group`` that commits only when told."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset=start_at,
        **{**options, "enable_auto_commit": False},
    )


def plain_reader(bootstrap: str, options: Mapping[str, Any]) -> Consumer:
    """A consumer without a group: it is assigned partitions and commits nothing."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        **{**dict(options), "enable_auto_commit": False},
    )


def admin_client(bootstrap: str, options: Mapping[str, Any]) -> Admin:
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap, **admin_options(options))


def admin_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in options.items() if name in ADMIN_OPTIONS}


async def stop(consumer: Consumer) -> None:
    """Stop ``consumer``, also with the broker gone (the guard the roles' consumers stop through)."""
    if await stopped_with_broker_gone(consumer):
        log.info("consumer stopped with the broker gone")


class RevokedListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells ``forget`` of the partitions taken away; an assignment needs nothing at once (the consuming
    loop seeks a partition back before any of its records is used)."""

    def __init__(self, forget: Callable[[list[TopicPartition]], None]) -> None:
        self.forget = forget

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.forget(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


async def cluster_id(admin: Admin, stop: asyncio.Event | None) -> str | None:
    """The broker's cluster id, asked until it answers (a broker restarting does not, for a while);
    None when ``stop`` is set meanwhile."""
    while stop is None or not stop.is_set():
        try:
            found = (await admin.describe_cluster()).get("cluster_id")
            return str(found or "")
        except KafkaError as exc:
            log.info("broker not answering for its cluster id; asking again", extra={"error": repr(exc)})
            await asyncio.sleep(INCARNATION_RETRY_S)
    return None


async def commit(consumer: Consumer, next_offsets: Mapping[tuple[str, int], int]) -> None:
    try:
        await consumer.commit(
            {TopicPartition(topic, partition): offset for (topic, partition), offset in next_offsets.items()}
        )
    except (
        CommitFailedError,
        IllegalStateError,
    ) as exc:  # a rebalance took the partition: its new owner reads the batch again
        log.warning("commit refused after a rebalance; the batch will be delivered again", extra={"error": str(exc)})


async def caught_up(consumer: Consumer) -> bool:
    """Whether every assigned partition is read up to its end, as the last fetch of it saw the end."""
    assigned = consumer.assignment()
    if not assigned:
        return False
    try:
        for tp in assigned:
            end = consumer.highwater(tp)
            if end is None or await consumer.position(tp) < end:
                return False
    except IllegalStateError:  # a rebalance is under way
        return False
    return True


async def partitions(reader: Consumer, topic: str) -> set[int]:
    deadline = time.monotonic() + TOPIC_WAIT_S
    while not (found := reader.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            raise LookupError(f"topic {topic} does not exist")
        await reader.topics()
        await asyncio.sleep(TOPIC_WAIT_STEP_S)
    return set(found)
