"""Kafka plumbing against the real broker: acks, manual commits, the dead-letter topic."""

from __future__ import annotations

import json
import threading
import time

import pytest
from kafka import KafkaConsumer

from edgecore.stack import Stack
from foundation.consumer import EventConsumer
from foundation.errors import NotFound, PermanentError
from foundation.events import TrainingDataReady
from foundation.layout import Layout, Location
from foundation.messaging import DLQ_REASON, EventProducer, ensure_topics, parse_event_record
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.conditions import wait_for
from testkit.samples import READY


@pytest.fixture
def topics(stack: Stack, unique: str) -> Settings:
    """Settings whose edgecore topics are fresh for this test."""
    settings = Settings().updated(
        kafka={
            "topic_training_data_ready": f"t-ready-{unique}",
            "topic_model_published": f"t-published-{unique}",
            "topic_dead_letter": f"t-dlq-{unique}",
            "topic_s3_events": f"t-s3-{unique}",
        }
    )
    ensure_topics(settings.kafka)
    return settings


def _drain(settings: Settings, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    found: list = []
    deadline = time.monotonic() + timeout_s
    while len(found) < expected and time.monotonic() < deadline:
        found.extend(record for batch in consumer.poll(timeout_ms=500).values() for record in batch)
    consumer.close()
    return found


def _consumer(settings: Settings, producer: EventProducer, group: str) -> EventConsumer:
    return EventConsumer(
        settings.kafka,
        group,
        [settings.kafka.topic_training_data_ready],
        parse_event_record(settings.kafka.max_event_bytes),
        producer,
        retry_backoff_s=0.1,
    )


def test_topics_are_created_once_with_settings_partitions(topics: Settings) -> None:
    assert ensure_topics(topics.kafka) == []
    consumer = KafkaConsumer(bootstrap_servers=topics.kafka.bootstrap_servers)
    assert (
        len(consumer.partitions_for_topic(topics.kafka.topic_training_data_ready)) == topics.kafka.partitions
    )
    consumer.close()


def test_where_strimzi_owns_topics_a_missing_one_is_an_error_and_none_is_created(
    topics: Settings, unique: str
) -> None:
    owned = topics.updated(kafka={"create_topics": False})
    missing = f"edgecore.test-missing-{unique}"

    with pytest.raises(NotFound, match=missing):
        ensure_topics(owned.kafka, extra=[missing])

    consumer = KafkaConsumer(bootstrap_servers=topics.kafka.bootstrap_servers)
    assert missing not in consumer.topics()
    consumer.close()


def test_published_event_is_consumed_typed_and_committed(topics: Settings, unique: str) -> None:
    producer = EventProducer(topics.kafka, "/tests/producer")
    producer.publish(topics.kafka.topic_training_data_ready, READY)
    consumer = _consumer(topics, producer, f"g-{unique}")
    got: list[TrainingDataReady] = []
    deadline = time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        consumer.poll_once(lambda env, rec: got.append(env.data))
    consumer.close()
    assert got == [READY]
    again = _consumer(topics, producer, f"g-{unique}")
    assert again.poll_once(lambda env, rec: got.append(env.data), timeout_ms=2000) == 0, (
        "offset was committed"
    )
    again.close()
    producer.close()


def test_malformed_records_go_to_the_dlq_and_the_consumer_keeps_going(topics: Settings, unique: str) -> None:
    producer = EventProducer(topics.kafka, "/tests/producer")
    bad = [b"garbage", b'{"specversion": "1.0"}', b""]
    for raw in bad:
        producer.send_raw(topics.kafka.topic_training_data_ready, raw, key="hypermarket")
    producer.publish(topics.kafka.topic_training_data_ready, READY)
    consumer = _consumer(topics, producer, f"g-{unique}")
    handled: list[TrainingDataReady] = []
    stop = threading.Event()
    worker = threading.Thread(target=consumer.run, args=(lambda env, rec: handled.append(env.data), stop))
    worker.start()
    dead = _drain(topics, topics.kafka.topic_dead_letter, expected=len(bad))
    deadline = time.monotonic() + 30
    while not handled and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    worker.join(timeout=10)
    consumer.close()
    producer.close()
    assert handled == [READY]
    assert sorted(r.value for r in dead) == sorted(bad), "the original bytes are kept"
    reasons = [dict(r.headers)[DLQ_REASON].decode() for r in dead]
    assert all(reasons) and any("not a structured CloudEvent" in r for r in reasons)


def test_a_permanent_handler_failure_dead_letters_the_record(topics: Settings, unique: str) -> None:
    producer = EventProducer(topics.kafka, "/tests/producer")
    producer.publish(topics.kafka.topic_training_data_ready, READY)
    consumer = _consumer(topics, producer, f"g-{unique}")

    def refuse(env: object, rec: object) -> None:
        raise PermanentError("dataset hypermarket v000001 has no images")

    deadline = time.monotonic() + 30
    while consumer.stats.consumed == 0 and time.monotonic() < deadline:
        consumer.poll_once(refuse)
    consumer.close()
    dead = _drain(topics, topics.kafka.topic_dead_letter, expected=1)
    producer.close()
    assert [dict(r.headers)[DLQ_REASON].decode() for r in dead] == [
        "PermanentError: dataset hypermarket v000001 has no images"
    ]


def test_minio_object_created_notification_arrives_on_kafka(
    stack: Stack, settings: Settings, store: ObjectStore, layout: Layout, unique: str
) -> None:
    key = f"datasets/notify-{unique}/v000001/manifest.json"
    store.put_bytes(Location(layout.training_bucket, key), b"{}")
    deadline = time.monotonic() + 30
    consumer = KafkaConsumer(
        settings.kafka.topic_s3_events,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    keys: list[str] = []
    while key not in keys and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            for record in batch:
                event = json.loads(record.value)
                keys.extend(r["s3"]["object"]["key"] for r in event.get("Records", []))
    consumer.close()
    assert key in [k.replace("%2F", "/") for k in keys]


def test_a_member_left_without_partitions_stays_in_its_group(topics: Settings, unique: str) -> None:
    """The join watchdog replaces consumers stuck outside their group, not idle members inside it."""
    producer = EventProducer(topics.kafka, "/tests/producer")
    members = [
        EventConsumer(
            topics.kafka,
            f"g-{unique}",
            [topics.kafka.topic_training_data_ready],
            parse_event_record(topics.kafka.max_event_bytes),
            producer,
            join_timeout_s=12.0,
        )
        for _ in range(topics.kafka.partitions + 1)
    ]
    originals = [member.consumer for member in members]
    stop = threading.Event()
    # each member polls in its own thread, as each would in its own process
    threads = [threading.Thread(target=m.run, args=(lambda env, rec: None, stop, 200)) for m in members]
    for thread in threads:
        thread.start()
    # every member judged in its group by the watchdog, or one replaced: either way it has decided
    wait_for(
        lambda: all(m.joined for m in members) or [m.consumer for m in members] != originals,
        90,
        what="the watchdog's verdict on every member",
    )
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assignments = [member.consumer.assignment() for member in members]
    for member in members:
        member.close()
    producer.close()
    assert [m.consumer for m in members] == originals, "no member was replaced"
    assert sum(len(a) for a in assignments) == topics.kafka.partitions
    assert sum(1 for a in assignments if not a) == 1
