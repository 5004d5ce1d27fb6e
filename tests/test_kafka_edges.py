"""Edges on Kafka: TLS and a login of their own on the broker's edge listener, their own topic only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from pydantic import SecretStr

from edgecore.stack import Stack
from foundation.errors import EdgecoreError
from foundation.events import AnomalyDetected, ModelPublished
from foundation.kafka_users import grant_edge, kafka_user, new_password, revoke_edge
from foundation.messaging import EventProducer, connection, ensure_topics
from foundation.settings import Settings


@pytest.fixture
def core_kafka(stack: Stack, settings: Settings) -> Settings:
    unique = uuid.uuid4().hex[:10]
    return settings.updated(
        kafka={
            "topic_model_published": f"t-published-{unique}",
            "topic_anomaly_detected": f"t-anomaly-{unique}",
        }
    )


@pytest.fixture
def edges(core_kafka: Settings) -> Iterator[dict[str, str]]:
    passwords = {f"e{uuid.uuid4().hex[:8]}": new_password() for _ in range(2)}
    for edge, password in passwords.items():
        grant_edge(core_kafka.kafka, edge, password)
    yield passwords
    for edge in passwords:
        revoke_edge(core_kafka.kafka, edge)


def _as_edge(core: Settings, edge: str, password: str) -> Settings:
    return core.updated(
        kafka={
            "bootstrap": f"{core.kafka.host}:{core.kafka.edge_port}",
            "security_protocol": "SASL_SSL",
            "username": kafka_user(edge),
            "password": SecretStr(password),
            "ca_file": core.ca_file,
        }
    )


def _read(settings: Settings, topic: str) -> list[bytes]:
    """Every record of ``topic`` (from the start) read as ``settings`` log in; none where not allowed
    (the broker answers "not authorized", which the client logs and reads nothing)."""
    consumer = KafkaConsumer(
        **connection(settings.kafka), group_id=None, consumer_timeout_ms=5000, request_timeout_ms=10000
    )
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.kafka.partitions)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return [record.value for record in consumer]
    finally:
        consumer.close()


def _published(edge: str) -> ModelPublished:
    return ModelPublished(
        model=f"{edge}-products",
        version="v000001",
        registry_uri=f"s3://models/models/{edge}-products/v000001/",
        edges=[edge],
        files={"model.tflite": "0" * 64},
        labels=["APPLE-RED"],
    )


def test_an_edge_reads_its_own_topic_over_tls_with_its_login(
    core_kafka: Settings, edges: dict[str, str]
) -> None:
    edge, password = next(iter(edges.items()))
    producer = EventProducer(core_kafka.kafka, "tests/kafka-edges")
    try:
        producer.publish(core_kafka.kafka.edge_topic(edge), _published(edge))
    finally:
        producer.close()

    records = _read(_as_edge(core_kafka, edge, password), core_kafka.kafka.edge_topic(edge))

    assert len(records) == 1 and edge.encode() in records[0]


def test_an_edge_cannot_read_another_edge_s_topic(core_kafka: Settings, edges: dict[str, str]) -> None:
    (mine, password), (theirs, their_password) = list(edges.items())
    producer = EventProducer(core_kafka.kafka, "tests/kafka-edges")
    try:
        producer.publish(core_kafka.kafka.edge_topic(theirs), _published(theirs))
    finally:
        producer.close()

    assert _read(_as_edge(core_kafka, mine, password), core_kafka.kafka.edge_topic(theirs)) == []
    assert len(_read(_as_edge(core_kafka, theirs, their_password), core_kafka.kafka.edge_topic(theirs))) == 1


def _alarm(edge: str) -> AnomalyDetected:
    return AnomalyDetected(
        edge=edge,
        machine="press-1",
        model="press-1-sensors",
        version="v000001",
        window_end=datetime.now(UTC),
        anomalous=3,
        of=5,
        error=2.5,
        threshold=1.0,
    )


def test_an_edge_announces_its_own_alarms_but_cannot_write_another_edge_s_or_any_other_topic(
    core_kafka: Settings, edges: dict[str, str]
) -> None:
    (edge, password), (other, _) = list(edges.items())
    ensure_topics(core_kafka.kafka)
    producer = EventProducer(_as_edge(core_kafka, edge, password).kafka, "tests/kafka-edges")
    try:
        producer.publish(core_kafka.kafka.anomaly_topic(edge), _alarm(edge))
        for topic in (core_kafka.kafka.anomaly_topic(other), core_kafka.kafka.topic_training_data_ready):
            with pytest.raises((KafkaError, EdgecoreError)):
                producer.publish(topic, _alarm(other), timeout_s=10)
    finally:
        producer.close()

    [record] = _read(core_kafka, core_kafka.kafka.anomaly_topic(edge))
    assert edge.encode() in record
    assert _read(core_kafka, core_kafka.kafka.anomaly_topic(other)) == []


def test_a_wrong_password_gets_no_connection(core_kafka: Settings, edges: dict[str, str]) -> None:
    edge = next(iter(edges))

    with pytest.raises(KafkaError):
        _read(_as_edge(core_kafka, edge, new_password()), core_kafka.kafka.edge_topic(edge))
