"""How controllers learn that a new version may exist: Kafka events, the front door, the bucket.

``model-published`` is the fast path (its own consumer group, so every controller fleet
sees every event; at an edge site, on the edge's own topic over TLS with its login); a
long poll of the front door is the fallback for sites that cannot hold a Kafka
connection; polling the edge bucket covers the time a controller or Kafka was down.
Each only *triggers* a reconcile: the bucket says which version is newest, so a missed,
repeated or out-of-order event cannot do harm.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import httpx
from kafka.consumer.fetcher import ConsumerRecord

from edge_sync.delivery.pull import Puller
from foundation.consumer import EventConsumer
from foundation.errors import EdgecoreError, ServiceUnavailable
from foundation.events import Envelope, ModelPublished
from foundation.messaging import EventProducer, parse_event_record
from foundation.settings import KafkaSettings

log = logging.getLogger(__name__)
LONG_POLL_S = 25.0
LONG_POLL_RETRY_S = 5.0


def consumer_group(fleet: str) -> str:
    return f"edgecore-edge-sync-{fleet}"


def consume_model_published(
    kafka: KafkaSettings,
    group_id: str,
    topics: list[str],
    on_event: Callable[[ModelPublished], None],
    stop: threading.Event,
    retry_s: float = 5.0,
    connected: threading.Event | None = None,
) -> None:
    """Feed ``model-published`` events to ``on_event`` until ``stop``; wait out Kafka outages.

    Other event types on the topic are skipped; malformed records go to the DLQ (the
    consumer's contract).  While Kafka cannot be reached the bucket poller carries on.
    """

    def handler(envelope: Envelope, record: ConsumerRecord) -> None:
        if isinstance(envelope.data, ModelPublished):
            on_event(envelope.data)

    while not stop.is_set():
        producer: EventProducer | None = None
        consumer: EventConsumer[Envelope] | None = None
        try:
            if kafka.security_protocol != "SASL_SSL":  # an edge's login may not write the dead-letter topic
                producer = EventProducer(kafka, source=f"/edgecore/edge-sync/{group_id}")
            consumer = EventConsumer(
                kafka,
                group_id,
                topics,
                parse_event_record(kafka.max_event_bytes),
                producer,
                retry_backoff_s=min(retry_s, 1.0),
            )
            if connected is not None:
                connected.set()
            consumer.run(handler, stop, timeout_ms=250)
        except ServiceUnavailable as exc:
            log.warning("Kafka unavailable (%s); relying on bucket polling, retrying in %.0f s", exc, retry_s)
            stop.wait(retry_s)
        finally:
            if consumer is not None:
                consumer.close()
            if producer is not None:
                producer.close()


def long_poll(puller: Puller, model: str, on_pulled: Callable[[], None], stop: threading.Event) -> None:
    """Ask the front door for a newer version, held until one exists (the fallback of sites without
    Kafka); each pulled version triggers a reconcile.  A failing door is asked again after a pause."""
    while not stop.is_set():
        try:
            if puller.pull(model, wait_s=LONG_POLL_S) is not None:
                on_pulled()
        except (EdgecoreError, OSError, httpx.HTTPError) as exc:  # the thread must outlive any one failure
            log.warning("front door long poll failed (%s); again in %.0f s", exc, LONG_POLL_RETRY_S)
            stop.wait(LONG_POLL_RETRY_S)


def poll_bucket(trigger: Callable[[], None], interval_s: float, stop: threading.Event) -> None:
    """Call ``trigger`` every ``interval_s`` (first at once) until ``stop``."""
    while not stop.is_set():
        try:
            trigger()
        except Exception:  # one failed round must not end polling
            log.exception("bucket poll failed; next round in %.0f s", interval_s)
        stop.wait(interval_s)
