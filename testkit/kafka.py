"""Where a consumer group stands on a topic: what tests wait on before saying nothing else happened."""

from __future__ import annotations

from kafka import KafkaConsumer

from foundation import events
from foundation.consumer import wait_for_partitions
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


def published(kafka: KafkaSettings, group: str) -> list[events.ModelPublished]:
    """Every ``model-published`` event on the core's topic so far, read by a new ``group``."""
    consumer = KafkaConsumer(
        kafka.topic_model_published,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
    )
    try:
        found = [events.parse(record.value).data for record in consumer]
    finally:
        consumer.close()
    return [e for e in found if isinstance(e, events.ModelPublished)]
