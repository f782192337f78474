"""Knowing when a consumer has read everything that was on its partitions."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer


async def caught_up(consumer: AIOKafkaConsumer) -> bool:
    assignment = list(consumer.assignment())
    if not assignment:
        return True
    ends = await consumer.end_offsets(assignment)
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            return False
    return True
