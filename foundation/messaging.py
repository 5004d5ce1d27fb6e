"""Kafka plumbing: topics, an acks=all producer, a manually committing consumer, the DLQ.

The consumer's contract is at-least-once with no poison pills: a record is committed
only after its handler returned, or after it was written to the dead-letter topic
(with the reason and the original bytes) because it could not be parsed or the
handler refused it permanently.  A retryable failure leaves the record uncommitted and
is tried again, so handlers must be idempotent.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from foundation import events
from foundation.errors import EdgecoreError, InvalidInput, NotFound, PermanentError, ServiceUnavailable
from foundation.settings import KafkaSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
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


@dataclass
class ConsumerStats:
    consumed: int = 0
    handled: int = 0
    dead_lettered: int = 0
    retried: int = 0
    reasons: list[str] = field(default_factory=list)


class EventConsumer(Generic[T]):
    """Consumes records, parses them, hands them to a handler and commits manually.

    ``parser`` turns a raw record into ``T`` or raises :class:`InvalidInput`; ``handler``
    may raise :class:`PermanentError` (record goes to the DLQ) or any retryable error
    (the record is redelivered after ``retry_backoff_s``).  It subscribes once its metadata
    knows the topics' partitions, and replaces itself if it has not joined its group
    within ``join_timeout_s`` (see :meth:`_connect` and :meth:`_check_joined`).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        topics: Iterable[str],
        parser: Callable[[ConsumerRecord], T],
        dead_letters: EventProducer | None,
        retry_backoff_s: float = 1.0,
        join_timeout_s: float = 30.0,
        metadata_timeout_s: float = 30.0,
        **consumer_options: Any,
    ) -> None:
        self.kafka = kafka
        self.parser = parser
        self.dead_letters = dead_letters
        self.retry_backoff_s = retry_backoff_s
        self.stats = ConsumerStats()
        options: dict[str, Any] = {
            **connection(kafka),
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_partition_fetch_bytes": kafka.max_event_bytes + 65_536,
            "client_id": f"edgecore-{group_id}",
            # notice a topic created (or repartitioned) after joining within seconds, not 5 min
            "metadata_max_age_ms": 5_000,
        }
        options.update(consumer_options)
        self._topics = list(topics)
        self._options = options
        self.join_timeout_s = join_timeout_s
        self.metadata_timeout_s = metadata_timeout_s
        self._consumer = self._connect()
        self._joined_by: float | None = time.monotonic() + join_timeout_s

    def _connect(self) -> KafkaConsumer:
        """A consumer subscribed only once its own metadata lists every topic's partitions.

        A group leader that assigns before its metadata has the topics (just created, or
        not yet served) hands out nothing, and kafka-python 3.0 does not always rebalance
        when the metadata arrives; waiting for it first avoids that empty first join.
        """
        where = self.kafka.bootstrap_servers
        try:
            consumer = KafkaConsumer(**self._options)
        except KafkaError as exc:
            raise ServiceUnavailable(f"Kafka at {where}: {exc}") from exc
        try:
            wait_for_partitions(consumer, self._topics, self.metadata_timeout_s, where)
            consumer.subscribe(self._topics)
        except BaseException:
            consumer.close()
            raise
        return consumer

    def _check_joined(self) -> None:
        """Replace a consumer that never joined its group.

        kafka-python 3.0 can stay stuck looking up the group coordinator (the group never
        sees the member, nothing is consumed); a fresh consumer gets through.  Committed
        offsets make the swap lossless.  A member with no partitions (more members than
        partitions) has joined all the same and is left alone.
        """
        if self._joined_by is None:
            return
        if self._in_group():
            self._joined_by = None
            log.info("consumer group %s joined: %s", self._options["group_id"], self._consumer.assignment())
        elif time.monotonic() > self._joined_by:
            log.warning(
                "consumer group %s not joined after %.0f s: reconnecting",
                self._options["group_id"],
                self.join_timeout_s,
            )
            self._joined_by = time.monotonic() + self.join_timeout_s
            fresh = self._connect()  # if this fails, the old consumer is kept and retried later
            self._consumer.close()
            self._consumer = fresh

    def _in_group(self) -> bool:
        if self._consumer.assignment():
            return True
        # No public API says "joined with no partitions"; the coordinator's generation does.
        coordinator = getattr(self._consumer, "_coordinator", None)
        return coordinator is not None and coordinator.generation_if_stable() is not None

    @property
    def joined(self) -> bool:
        """The watchdog has seen this consumer in its group (it will not be replaced)."""
        return self._joined_by is None

    @property
    def consumer(self) -> KafkaConsumer:
        return self._consumer

    def dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        """Keep the original bytes and key, and say why and where they came from.

        An edge's consumer has no dead-letter topic (its Kafka user may only read its own
        topic): a record it cannot use is logged and skipped.
        """
        headers = [
            (DLQ_REASON, reason.encode()[:4096]),
            (DLQ_TOPIC, record.topic.encode()),
            (DLQ_PARTITION, str(record.partition).encode()),
            (DLQ_OFFSET, str(record.offset).encode()),
        ]
        if self.dead_letters is not None:
            self.dead_letters.send_raw(self.kafka.topic_dead_letter, record.value or b"", record.key, headers)
        self.stats.dead_lettered += 1
        if len(self.stats.reasons) < 100:
            self.stats.reasons.append(reason)
        log.warning("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)

    def poll_once(self, handler: Callable[[T, ConsumerRecord], None], timeout_ms: int = 500) -> int:
        """Process one batch; returns how many records were committed."""
        try:
            batch = self._consumer.poll(timeout_ms=timeout_ms)
        except KafkaError as exc:
            raise ServiceUnavailable(f"polling {self._consumer.subscription()}: {exc}") from exc
        self._check_joined()
        done: dict[TopicPartition, OffsetAndMetadata] = {}
        count = 0
        for tp, records in batch.items():
            for record in records:
                self.stats.consumed += 1
                try:
                    self._handle(record, handler)
                except EdgecoreError as exc:
                    if not exc.retryable:
                        raise
                    # Redeliver this record (and everything after it) later.
                    self.stats.retried += 1
                    log.warning("retryable failure on %s@%d: %s", tp, record.offset, exc)
                    self._consumer.seek(tp, record.offset)
                    time.sleep(self.retry_backoff_s)
                    break
                done[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
                count += 1
        if done:
            try:
                self._consumer.commit(done)
            except KafkaError as exc:
                raise ServiceUnavailable(f"committing offsets {done}: {exc}") from exc
        return count

    def _handle(self, record: ConsumerRecord, handler: Callable[[T, ConsumerRecord], None]) -> None:
        try:
            item = self.parser(record)
        except InvalidInput as exc:
            self.dead_letter(record, str(exc))
            return
        try:
            handler(item, record)
        except PermanentError as exc:
            self.dead_letter(record, f"{type(exc).__name__}: {exc}")
            return
        self.stats.handled += 1

    def run(
        self,
        handler: Callable[[T, ConsumerRecord], None],
        stop: threading.Event,
        timeout_ms: int = 500,
    ) -> ConsumerStats:
        """Consume until ``stop`` is set; broker outages are waited out, not fatal."""
        while not stop.is_set():
            try:
                self.poll_once(handler, timeout_ms)
            except ServiceUnavailable as exc:
                log.warning("Kafka unavailable, retrying: %s", exc)
                stop.wait(self.retry_backoff_s)
        return self.stats

    def close(self) -> None:
        self._consumer.close()


def wait_for_partitions(
    consumer: KafkaConsumer, topics: Iterable[str], timeout_s: float, where: str
) -> list[TopicPartition]:
    """Every topic's partitions, once the consumer's metadata lists them all.

    A topic created a moment ago is not in every broker answer yet; whoever reads it
    first (a group member before subscribing, an observer before assigning) waits here.
    """
    wanted = list(topics)
    deadline = time.monotonic() + timeout_s
    try:
        while missing := [topic for topic in wanted if not consumer.partitions_for_topic(topic)]:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"Kafka at {where}: no partitions for {missing} after {timeout_s:.0f} s"
                    " (topics not created?)"
                )
            time.sleep(0.2)
        return [TopicPartition(t, p) for t in wanted for p in sorted(consumer.partitions_for_topic(t))]
    except KafkaError as exc:
        raise ServiceUnavailable(f"Kafka at {where}: {exc}") from exc


def parse_event_record(max_bytes: int) -> Callable[[ConsumerRecord], events.Envelope]:
    """The parser for edgecore's own CloudEvents topics."""

    def parser(record: ConsumerRecord) -> events.Envelope:
        return events.parse(record.value, record.key, max_bytes=max_bytes)

    return parser
