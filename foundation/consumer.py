"""The manually committing consumer: at-least-once, no poison pills, no stuck member.

A record is committed only after its handler returned, or after it was written to the
dead-letter topic (``foundation.messaging``) because it could not be parsed or the handler
refused it permanently.  A retryable failure leaves the record uncommitted and is tried
again, so handlers must be idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from foundation.errors import EdgecoreError, InvalidInput, PermanentError, ServiceUnavailable
from foundation.messaging import DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON, DLQ_TOPIC, EventProducer, connection
from foundation.settings import KafkaSettings

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class ConsumerStats:
    consumed: int = 0
    handled: int = 0
    dead_lettered: int = 0
    retried: int = 0
    reasons: list[str] = field(default_factory=list)


class _ResumeAfter(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions given (back) to a member resume after the records it handled but could
    not commit, instead of handling them again from the last committed offset."""

    def __init__(
        self, consumer: KafkaConsumer, pending: Callable[[], dict[TopicPartition, OffsetAndMetadata]]
    ) -> None:
        self._consumer = consumer
        self._pending = pending

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Nothing to do: offsets are committed as records are handled."""

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """The assignors rebalance eagerly: ``assigned`` is the whole assignment, and a pending
        offset of a partition now another member's is dropped (it resumes from the committed one)."""
        pending = self._pending()
        for tp in list(pending):
            if tp in assigned:
                self._consumer.seek(tp, pending[tp].offset)
            else:
                del pending[tp]


class EventConsumer(Generic[T]):
    """Consumes records, parses them, hands them to a handler and commits manually.

    ``parser`` turns a raw record into ``T`` or raises :class:`InvalidInput`; ``handler``
    may raise :class:`PermanentError` (record goes to the DLQ) or any retryable error
    (the record is redelivered after ``retry_backoff_s``).  It subscribes once its metadata
    knows the topics' partitions, and replaces itself if it is not in its group within
    ``join_timeout_s`` of starting or of a rebalance beginning (see :meth:`_connect` and
    :meth:`_check_joined`).
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
        self._pending: dict[TopicPartition, OffsetAndMetadata] = {}
        """Offsets of handled records whose commit failed, committed with the next poll's."""
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
            consumer.subscribe(self._topics, listener=_ResumeAfter(consumer, lambda: self._pending))
        except BaseException:
            consumer.close()
            raise
        return consumer

    def _check_joined(self) -> None:
        """Replace a consumer stuck outside its group.

        kafka-python 3.0 can stay stuck looking up the group coordinator, on its first
        join or on a rejoin (the group never sees the member, nothing is consumed, every
        commit is refused as "undergoing a rebalance"); a fresh consumer gets through.
        Committed offsets, and those of handled records whose commit was refused
        (``_ResumeAfter``), make the swap lossless.  A member with no partitions (more
        members than partitions) is in its group all the same and is left alone; one kept
        waiting that long by a peer still in its handler is replaced too, which costs one
        more rebalance and loses nothing.
        """
        if self._in_group():
            if self._joined_by is not None:
                log.info(
                    "consumer group %s joined: %s", self._options["group_id"], self._consumer.assignment()
                )
            self._joined_by = None
        elif self._joined_by is None:  # a rebalance began: it gets as long as a first join
            self._joined_by = time.monotonic() + self.join_timeout_s
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
        # No public API says "rebalancing" or "joined with no partitions"; the coordinator does.
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is not None and coordinator.rebalance_in_progress():
            return False
        if self._consumer.assignment():
            return True
        return coordinator is not None and coordinator.generation_if_stable() is not None

    @property
    def joined(self) -> bool:
        """The watchdog last saw this consumer in its group (it is not about to be replaced)."""
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
        if done or (self._pending and self.joined):  # joined: as _check_joined found it above
            self._commit(done)
        return count

    def _commit(self, done: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Commit this batch's offsets and any a failed commit left behind.

        A rebalance refuses commits while it runs; the records were handled all the same.
        Kept, their offsets are committed by the next poll once the partitions are ours
        again, so nothing is handled twice and an idle consumer still catches up.  Offsets
        of partitions the group gave to another member are dropped: it starts from the
        last committed offset.
        """
        assigned = self._consumer.assignment()
        offsets = {tp: o for tp, o in self._pending.items() if tp in assigned}
        for tp, offset in done.items():
            if tp not in offsets or offsets[tp].offset < offset.offset:
                offsets[tp] = offset
        self._pending = {}
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except KafkaError as exc:
            self._pending = offsets
            raise ServiceUnavailable(f"committing offsets {offsets}: {exc}") from exc

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
