"""The Kafka listener: new dataset versions become training runs, exactly one per version.

It consumes ``training-data-ready`` events and MinIO's own object-created records (for
dataset manifests only: a version exists once its manifest does) in one consumer group.
Both name a ``(dataset, version)``; the :class:`Ledger` (in S3, conditional writes) records
each version *before* its Kafka offset is committed, so a version seen twice, from both
sources, or redelivered after a crash, is counted as deduplicated and launches nothing.

Launching is a two-step record: a run key is assigned to the pending versions and
stored (``launching``), the :class:`Launcher` is called with that key, then the run id is
stored (``launched``).  Launchers are idempotent per run key, so a listener killed after
launching and before recording it relaunches the same key on restart and gets the same
run back, not a second one.  Versions arriving within ``listener_coalesce_s`` of the
first pending one share a run (a burst from several edges trains once); versions of two
use cases (an edge's photos, ``<edge>-telemetry``) go to two runs, each of its own pipeline
(``pipelines.submit.pipeline_for``).

Malformed records go to the dead-letter topic with the reason (``EventConsumer`` does
that); records about other objects are ignored.  Metrics are Prometheus counters.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any
from urllib.parse import unquote_plus

from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from foundation import events
from foundation.consumer import EventConsumer
from foundation.errors import InvalidInput, MalformedEvent, PayloadTooLarge
from foundation.layout import MANIFEST, NAME_RE, VERSION_RE, Layout, dataset_use_case
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import KafkaSettings, Settings
from foundation.storage.store import ObjectStore
from pipelines.ledger import Ledger
from pipelines.runs import DatasetVersion, Launcher, RunRequest

log = logging.getLogger(__name__)
GROUP_ID = "edgecore-training-listener"
LAG_TIMEOUT_MS = 1000
_MANIFEST_KEY = re.compile(
    rf"^datasets/(?P<dataset>{NAME_RE.pattern[1:-1]})/(?P<version>{VERSION_RE.pattern[1:-1]})/{re.escape(MANIFEST)}$"
)


def parse_s3_record(value: bytes | None, training_bucket: str, max_bytes: int) -> DatasetVersion | None:
    """A MinIO bucket notification: the dataset version whose manifest was created, if any."""
    if not value:
        raise InvalidInput("empty S3 notification")
    if len(value) > max_bytes:
        raise PayloadTooLarge(f"S3 notification of {len(value)} bytes exceeds {max_bytes}")
    try:
        body = json.loads(value)
        records = body["Records"]
        if not isinstance(records, list) or not records:
            raise TypeError("Records is not a non-empty list")
        record = records[0]
        name = str(record["eventName"])
        bucket = str(record["s3"]["bucket"]["name"])
        key = unquote_plus(str(record["s3"]["object"]["key"]))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise InvalidInput(f"not a MinIO bucket notification: {type(exc).__name__}: {exc}") from exc
    match = _MANIFEST_KEY.match(key)
    if not name.startswith("s3:ObjectCreated:") or bucket != training_bucket or match is None:
        return None
    _, edge = dataset_use_case(match["dataset"])
    return DatasetVersion(match["dataset"], match["version"], bucket, key[: -len(MANIFEST)], edge)


class Listener:
    def __init__(
        self,
        kafka: KafkaSettings,
        coalesce_s: float,
        training_bucket: str,
        launcher: Launcher,
        ledger: Ledger,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.kafka = kafka
        self.training_bucket = training_bucket
        self.launcher = launcher
        self.ledger = ledger
        self.window_s = coalesce_s
        self.registry = registry or CollectorRegistry()
        self.consumed = Counter("edgecore_listener_consumed", "Records consumed", registry=self.registry)
        self.launched = Counter(
            "edgecore_listener_launched", "Training runs launched", registry=self.registry
        )
        self.deduplicated = Counter(
            "edgecore_listener_deduplicated", "Dataset versions seen again", registry=self.registry
        )
        self.ignored = Counter(
            "edgecore_listener_ignored", "Valid records about other objects", registry=self.registry
        )
        self.dead_lettered = Counter(
            "edgecore_listener_dead_lettered", "Malformed records sent to the DLQ", registry=self.registry
        )
        self.lag = Gauge("edgecore_listener_lag", "Records not yet consumed", registry=self.registry)
        self.polls = Counter(
            "edgecore_listener_polls", "Polls of Kafka, failed ones too (liveness)", registry=self.registry
        )

    # -- records -----------------------------------------------------------------------
    def parse(self, record: ConsumerRecord) -> DatasetVersion | None:
        if record.topic == self.kafka.topic_s3_events:
            return parse_s3_record(record.value, self.training_bucket, self.kafka.max_event_bytes)
        envelope = events.parse(record.value, record.key, max_bytes=self.kafka.max_event_bytes)
        data = envelope.data
        if not isinstance(data, events.TrainingDataReady):
            raise MalformedEvent(f"unexpected event type {envelope.type} on {record.topic}")
        return DatasetVersion(data.dataset, data.version, data.bucket, data.prefix, data.edge)

    def handle(self, item: DatasetVersion | None, record: ConsumerRecord) -> None:
        """Durably record the version before the consumer commits the record's offset."""
        if item is None:
            self.ignored.inc()
            return
        if not self.ledger.record(item):  # a failure is retryable: the record is redelivered
            self.deduplicated.inc()
            return
        log.info("dataset %s %s pending (from %s)", item.dataset, item.version, record.topic)
        if self.window_s <= 0:
            self.flush_safely()

    def flush_safely(self) -> None:
        """A launcher failure leaves the versions pending in the ledger: the next flush retries."""
        try:
            self.flush()
        except Exception as exc:
            log.warning("launching a run failed, will retry: %s", exc)

    # -- runs --------------------------------------------------------------------------
    def flush(self, force: bool = False) -> list[str]:
        """Launch one run per use case whose oldest pending version has waited the window.

        Each use case keeps its own window: a burst of photo sets that starts as a telemetry
        version's window closes is not cut short by it (one run of half the sets, then another).
        """
        pending = self.ledger.unassigned()
        now, launched = time.time(), []
        for use_case in sorted({dv.use_case for dv, _ in pending}):  # one run per use case's pipeline
            group = [(dv, seen) for dv, seen in pending if dv.use_case == use_case]
            if not force and now - group[0][1] < self.window_s:  # oldest first
                continue
            request = self.ledger.assign([dv for dv, _ in group])
            if request is not None:  # None: another replica took them
                launched.append(self._launch(request))
        return launched

    def recover(self) -> list[str]:
        """Runs assigned but not recorded as launched (a crash): relaunch the same keys."""
        return [self._launch(request) for request in self.ledger.launching()]

    def _launch(self, request: RunRequest) -> str:
        run_id = self.launcher.launch(request)
        self.ledger.mark_launched(request.run_key, run_id)
        self.launched.inc()
        log.info("run %s (%s) for %s", run_id, request.run_key, request.parameters()["datasets"])
        return run_id

    # -- the loop ----------------------------------------------------------------------
    def consumer(self, group_id: str = GROUP_ID) -> EventConsumer[DatasetVersion | None]:
        dead_letters = EventProducer(self.kafka, "edgecore/listener")
        topics = [self.kafka.topic_training_data_ready, self.kafka.topic_s3_events]
        return EventConsumer(self.kafka, group_id, topics, self.parse, dead_letters)

    def run(self, stop: threading.Event, group_id: str = GROUP_ID, lag_every_s: float = 5.0) -> None:
        """Consume until ``stop``; a graceful stop launches nothing early.

        Versions still inside their coalescing window stay pending in the durable ledger,
        and the next start launches them once their window is over: stopping (a rolling
        restart, say) never splits a burst into extra runs, and loses nothing.
        """
        self.recover()
        consumer = self.consumer(group_id)
        counted = (0, 0)
        next_lag = 0.0
        try:
            while not stop.is_set():
                try:
                    consumer.poll_once(self.handle, timeout_ms=200)
                except Exception as exc:
                    log.warning("poll failed, retrying: %s", exc)
                    stop.wait(1.0)
                self.polls.inc()
                stats = consumer.stats
                self.consumed.inc(stats.consumed - counted[0])
                self.dead_lettered.inc(stats.dead_lettered - counted[1])
                counted = (stats.consumed, stats.dead_lettered)
                self.flush_safely()
                if time.time() >= next_lag:
                    self.lag.set(_lag(consumer))
                    next_lag = time.time() + lag_every_s
        finally:
            consumer.close()
            if consumer.dead_letters is not None:
                consumer.dead_letters.close()


def _lag(consumer: EventConsumer[Any]) -> int:
    kafka = consumer.consumer
    assigned = list(kafka.assignment())
    if not assigned:
        return 0
    try:  # bounded: while the broker is down the loop must keep turning (a stop is seen at once)
        ends = kafka.end_offsets(assigned, timeout_ms=LAG_TIMEOUT_MS)
        return sum(max(0, ends[tp] - kafka.position(tp, timeout_ms=LAG_TIMEOUT_MS)) for tp in assigned)
    except Exception:
        return 0


def build_ledger(settings: Settings, group_id: str) -> Ledger:
    """The consumer group's ledger, in the training bucket (made if this is the first listener)."""
    store, layout = ObjectStore(settings.s3), Layout(settings.buckets)
    store.ensure_bucket(layout.training_bucket)
    return Ledger(store, layout.listener_ledger(group_id))


def run_listener(
    settings: Settings, launcher: Launcher, stop: threading.Event, group_id: str = GROUP_ID
) -> None:
    """The listener process: its ledger in the training bucket, metrics on their port."""
    ensure_topics(settings.kafka)
    ledger = build_ledger(settings, group_id)
    listener = Listener(
        settings.kafka, settings.listener.coalesce_s, settings.buckets.training, launcher, ledger
    )
    start_http_server(
        settings.listener.metrics_port, addr=settings.listener.metrics_host, registry=listener.registry
    )
    try:
        listener.run(stop, group_id)
    finally:
        ledger.close()
