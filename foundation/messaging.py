"""Kafka plumbing: topics, an acks=all producer, the dead-letter topic's headers.

The consumer that reads what this produces is ``foundation.consumer``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError

from foundation import events
from foundation.errors import NotFound, ServiceUnavailable
from foundation.settings import KafkaSettings

DLQ_REASON = "edgecore-dlq-reason"
DLQ_TOPIC = "edgecore-dlq-topic"
DLQ_PARTITION = "edgecore-dlq-partition"
DLQ_OFFSET = "edgecore-dlq-offset"


def connection(kafka: KafkaSettings) -> dict[str, Any]:
    """The options every kafka-python client takes: the brokers and, at an edge, TLS and its login."""
    options: dict[str, Any] = {"bootstrap_servers": kafka.bootstrap_servers}
    if kafka.security_protocol == "SASL_SSL":
        options.update(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username=kafka.username,
            sasl_plain_password=kafka.password.get_secret_value(),
            ssl_cafile=str(kafka.ca_file) if kafka.ca_file else None,
            ssl_check_hostname=True,
        )
    return options


def ensure_topics(kafka: KafkaSettings, timeout_s: float = 30.0, extra: Iterable[str] = ()) -> list[str]:
    """Create edgecore's topics and ``extra`` ones (partitions, retention from settings); return the new.

    Where ``create_topics`` is off (a cluster: Strimzi owns topics, with their replication),
    nothing is created and a missing topic is an error naming it.
    """
    try:
        admin = KafkaAdminClient(
            **connection(kafka),
            client_id="edgecore-admin",
            request_timeout_ms=int(timeout_s * 1000),
        )
    except KafkaError as exc:
        raise ServiceUnavailable(f"Kafka at {kafka.bootstrap_servers}: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        missing = [name for name in dict.fromkeys([*kafka.topics, *extra]) if name not in existing]
        if missing and not kafka.create_topics:
            raise NotFound(f"Kafka topics {missing} do not exist: create them (Strimzi KafkaTopic resources)")
        retention = str(kafka.retention_hours * 3_600_000)
        wanted = [
            NewTopic(
                name,
                num_partitions=kafka.partitions,
                replication_factor=1,
                topic_configs={
                    "retention.ms": retention,
                    "max.message.bytes": str(kafka.max_event_bytes + 65_536),
                },
            )
            for name in dict.fromkeys([*kafka.topics, *extra])
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics(wanted, timeout_ms=int(timeout_s * 1000))
        return [t.name for t in wanted]
    except KafkaError as exc:
        raise ServiceUnavailable(f"creating topics on {kafka.bootstrap_servers}: {exc}") from exc
    finally:
        admin.close()


class EventProducer:
    """Publishes events durably: acks=all, idempotent retries, and waits for the ack."""

    def __init__(self, kafka: KafkaSettings, source: str) -> None:
        self.source = source
        self.max_bytes = kafka.max_event_bytes
        try:
            self._producer = KafkaProducer(
                **connection(kafka),
                acks="all",
                retries=5,
                linger_ms=5,
                max_request_size=kafka.max_event_bytes + 65_536,
                client_id=f"edgecore-{source.rsplit('/', 1)[-1]}",
            )
        except KafkaError as exc:
            raise ServiceUnavailable(f"Kafka at {kafka.bootstrap_servers}: {exc}") from exc

    def publish(self, topic: str, data: events.EventData, timeout_s: float = 30.0) -> None:
        self.publish_all([topic], data, timeout_s)

    def publish_all(self, topics: list[str], data: events.EventData, timeout_s: float = 30.0) -> None:
        """One event (one id) on each of ``topics``: the core's topic and an edge's own."""
        record = self.record(data)
        for topic in topics:
            self.send_raw(topic, *record, timeout_s=timeout_s)

    def record(self, data: events.EventData) -> tuple[bytes, bytes | str | None, list[tuple[str, bytes]]]:
        """One event as a record (value, key, headers): the value is the whole structured CloudEvent."""
        message = events.to_message(data, self.source)
        value = message.value.encode() if isinstance(message.value, str) else message.value
        return value, message.key, list(message.headers.items())

    def send_raw(
        self,
        topic: str,
        value: bytes,
        key: bytes | str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        if isinstance(key, str):
            key = key.encode()
        try:
            future = self._producer.send(topic, value=value, key=key, headers=headers or [])
            future.get(timeout=timeout_s)
        except KafkaError as exc:
            raise ServiceUnavailable(f"publishing to {topic} (key {key!r}): {exc}") from exc

    def close(self) -> None:
        self._producer.close(timeout=10)


def parse_event_record(max_bytes: int) -> Callable[[ConsumerRecord], events.Envelope]:
    """The parser for edgecore's own CloudEvents topics."""

    def parser(record: ConsumerRecord) -> events.Envelope:
        return events.parse(record.value, record.key, max_bytes=max_bytes)

    return parser
