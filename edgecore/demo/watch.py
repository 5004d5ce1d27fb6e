"""What the core announces on Kafka during the demo, recorded as it arrives.

The demo learns that data is ready, that a model was published and that a machine's
alarm was raised by reading the run's own topics as the events are emitted, so the times
it reports are the times the services really announced them.  It only watches: it reads every partition from
the beginning by manual assignment, with no consumer group (nothing to join, nothing
to commit), so the observer can never be the part that waits on a group coordinator.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from foundation import events
from foundation.consumer import wait_for_partitions
from foundation.errors import MalformedEvent, ServiceUnavailable
from foundation.settings import Settings
from pipelines.results import evaluations, sensor_evaluations

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seen:
    envelope: events.Envelope
    received: float
    """time.time() when the demo saw it."""


class EventLog:
    def __init__(self, settings: Settings, edges: list[str], timeout_s: float = 30.0) -> None:
        kafka = settings.kafka
        topics = (
            kafka.topic_training_data_ready,
            kafka.topic_model_published,
            *(kafka.anomaly_topic(edge) for edge in edges),
        )
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=settings.kafka.bootstrap_servers,
                group_id=None,
                enable_auto_commit=False,
                max_partition_fetch_bytes=settings.kafka.max_event_bytes + 65_536,
            )
            partitions = wait_for_partitions(
                self._consumer, topics, timeout_s, settings.kafka.bootstrap_servers
            )
            self._consumer.assign(partitions)
            self._consumer.seek_to_beginning(*partitions)
        except KafkaError as exc:
            raise ServiceUnavailable(f"Kafka at {settings.kafka.bootstrap_servers}: {exc}") from exc
        self._max_bytes = settings.kafka.max_event_bytes
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._consumer.poll(timeout_ms=500)
            except KafkaError as exc:
                log.warning("demo event log: %s", exc)
                self._stop.wait(1.0)
                continue
            for records in batch.values():
                for record in records:
                    try:
                        envelope = events.parse(record.value, record.key, self._max_bytes)
                    except MalformedEvent as exc:
                        log.warning("demo event log: skipping a malformed record: %s", exc)
                        continue
                    with self._lock:
                        self._seen.append(Seen(envelope, time.time()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()

    def ready(self, dataset: str) -> list[Seen]:
        with self._lock:
            return [
                s
                for s in self._seen
                if isinstance(s.envelope.data, events.TrainingDataReady)
                and s.envelope.data.dataset == dataset
            ]

    def anomalies(self, edge: str) -> list[tuple[events.AnomalyDetected, float]]:
        """The alarms the store's gateway raised, each with when the demo saw it."""
        with self._lock:
            return [
                (s.envelope.data, s.received)
                for s in self._seen
                if isinstance(s.envelope.data, events.AnomalyDetected) and s.envelope.data.edge == edge
            ]

    def published(self, model: str) -> list[events.ModelPublished]:
        with self._lock:
            return [
                s.envelope.data
                for s in self._seen
                if isinstance(s.envelope.data, events.ModelPublished) and s.envelope.data.model == model
            ]


@dataclass(frozen=True)
class LocalRun:
    """One of the listener's local runs of a pipeline for an edge."""

    root: Path
    outcome: dict[str, Any] | None
    """Its ``outcome.json``; None while it runs."""

    def gate_reasons(self, edge: str) -> list[str]:
        """Why the edge's gate stopped this run, as its evaluate step recorded them."""
        root = self.root / "pipeline-root"
        found = sensor_evaluations(root).get(edge) or evaluations(root).get(edge)
        return list(found.reasons) if found is not None else []


def gate_stopped(runs: list[LocalRun], edge: str) -> str:
    """What the demo says of runs that published nothing: the gate's reasons, as recorded."""
    reasons = "; ".join(r for run in runs for r in run.gate_reasons(edge)) or "no reason kept"
    return f"the quality gate stopped it ({reasons})"


def local_runs(state_dir: Path, since: float, pipeline: str, edge: str) -> list[LocalRun]:
    """The listener's local runs of ``pipeline`` for ``edge`` still running, or finished since
    ``since`` (each run's ``outcome.json`` beside the ``launched.json`` that names its pipeline)."""
    found = []
    for launched in (state_dir / "listener" / "local").glob("*/launched.json"):
        outcome = launched.parent / "outcome.json"
        finished = outcome.exists()
        if finished and outcome.stat().st_mtime < since:
            continue
        record = json.loads(launched.read_text())
        if record["pipeline"] == pipeline and edge in record["arguments"].get("edges", []):
            found.append(LocalRun(launched.parent, json.loads(outcome.read_text()) if finished else None))
    return found
