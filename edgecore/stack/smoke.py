"""An end-to-end check of the running stack: S3 round trip with sha256, an event round trip.

The event goes to a topic of its own (``topic_smoke``): nothing fake ever reaches the
topics the services read, where a listener would take it for a dataset to train on.
"""

from __future__ import annotations

import os
import time
import uuid

from foundation import events
from foundation.consumer import EventConsumer
from foundation.errors import ServiceUnavailable
from foundation.layout import Layout, Location
from foundation.messaging import EventProducer, ensure_topics, parse_event_record
from foundation.settings import Settings
from foundation.storage.store import ObjectStore


def smoke_check(settings: Settings, timeout_s: float = 30.0) -> dict[str, str]:
    """Write and read back an object and an event; return what was checked."""
    store = ObjectStore(settings.s3)
    layout = Layout(settings.buckets)
    payload = os.urandom(64 * 1024)
    loc = Location(layout.training_bucket, f"smoke/{uuid.uuid4().hex}.bin")
    stored = store.put_bytes(loc, payload)
    intact = store.get_bytes(loc, expected_sha256=stored.sha256) == payload
    store.delete(loc)

    probe = events.TrainingDataReady(
        dataset="smoke",
        version="v000001",
        edge="smoke",
        labels=["SMOKE-TEST"],
        object_count=1,
        bucket=layout.training_bucket,
        prefix=loc.key,
        manifest_sha256=stored.sha256,
    )
    ensure_topics(settings.kafka)
    producer = EventProducer(settings.kafka, "/edgecore/smoke")
    consumer = EventConsumer(
        settings.kafka,
        f"edgecore-smoke-{uuid.uuid4().hex[:8]}",
        [settings.kafka.topic_smoke],
        parse_event_record(settings.kafka.max_event_bytes),
        producer,
        auto_offset_reset="latest",
    )
    seen: list[events.EventData] = []
    try:
        consumer.poll_once(lambda env, rec: None, timeout_ms=1000)  # join the group first
        producer.publish(settings.kafka.topic_smoke, probe)
        deadline = time.monotonic() + timeout_s
        while probe not in seen and time.monotonic() < deadline:
            consumer.poll_once(lambda env, rec: seen.append(env.data))
    finally:
        consumer.close()
        producer.close()
    if not intact or probe not in seen:
        raise ServiceUnavailable("smoke check failed: the object or the event did not come back intact")
    return {
        "s3": f"{settings.s3.endpoint_url}: 64 KiB object round trip, sha256 {stored.sha256[:12]}…",
        "kafka": f"{settings.kafka.bootstrap_servers}: event round trip on {settings.kafka.topic_smoke}",
    }
