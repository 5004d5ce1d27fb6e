"""Where a consumer group stands on a topic: what tests wait on before saying nothing else happened."""

from __future__ import annotations

from kafka import KafkaConsumer

from foundation.messaging import wait_for_partitions
from foundation.settings import KafkaSettings


def committed(kafka: KafkaSettings, group: str, topic: str) -> int:
    """The offsets ``group`` has committed on ``topic``, summed over its partitions."""
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    try:
        parts = wait_for_partitions(consumer, [topic], 30, kafka.bootstrap_servers)
        return sum(consumer.committed(tp) or 0 for tp in parts)
    finally:
        consumer.close()


def end_offset(kafka: KafkaSettings, topic: str) -> int:
    """How many records ``topic`` holds, summed over its partitions."""
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    try:
        parts = wait_for_partitions(consumer, [topic], 30, kafka.bootstrap_servers)
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()
