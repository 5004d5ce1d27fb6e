"""Where a consumer group stands on a topic (what tests wait on before saying nothing else
happened), and the tests' topics cleared away after a run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import KafkaError

from foundation import events
from foundation.consumer import wait_for_partitions
from foundation.messaging import connection
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


@contextmanager
def topics_removed_afterwards(kafka: KafkaSettings) -> Iterator[None]:
    """Topics created while the block runs, other than edgecore's own, are deleted at its end.

    Every test makes topics of its own.  Kept, they piled up run after run on a developer's
    stack (thousands of partitions) until the broker took minutes to start, and a test run
    lost its Kafka half-way.
    """
    admin = KafkaAdminClient(**connection(kafka))
    try:
        before = set(admin.list_topics())
        yield
        made = set(admin.list_topics()) - before - set(kafka.topics)
        names = sorted(name for name in made if not name.startswith("__"))
        for start in range(0, len(names), 200):
            with contextlib.suppress(KafkaError):
                admin.delete_topics(names[start : start + 200])
    finally:
        admin.close()
