"""The listener survives a Kafka broker restart: consumption resumes, nothing runs twice.

The shared broker of the test session (127.0.0.1:9092) is never touched: the test starts
its own KRaft node, with the same ``KafkaService`` code as ``edgecore stack up``, on free
ports with its own state folder, and restarts that one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_listener import ready

from edgecore.stack import Stack
from edgecore.stack.kafka import KafkaService
from edgecore.stack.settings import StackSettings
from foundation import events
from foundation.errors import ServiceUnavailable
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import Settings
from pipelines.launchers import DryRunLauncher
from pipelines.listener import Listener, build_ledger
from testkit.conditions import wait_for
from testkit.kafka import committed, end_offset
from testkit.uplink import free_port


@dataclass(frozen=True)
class PrivateBroker:
    settings: Settings
    service: KafkaService


@pytest.fixture
def private_kafka(stack: Stack, settings: Settings, tmp_path: Path, unique: str) -> Iterator[PrivateBroker]:
    """A broker of this test's own (MinIO stays the shared one), and the settings that reach it."""
    cfg = settings.updated(
        state_dir=tmp_path / "state",
        kafka={"port": free_port(), "edge_port": free_port(), "bootstrap": None},
        buckets={"training": f"test-train-{unique}"},
        # the stack's certificate for the broker's edge listener
        tls={"ca_file": settings.ca_file, "cert_file": settings.cert_file, "key_file": settings.key_file},
    )
    own = StackSettings().model_copy(update={"kafka_controller_port": free_port(), "kafka_heap_mb": 256})
    kafka = KafkaService(cfg, own)
    if not kafka.installed():
        pytest.skip("the Kafka jars are not resolved (edgecore stack install)")
    kafka.start(timeout_s=240)
    try:
        ensure_topics(cfg.kafka)
        yield PrivateBroker(cfg, kafka)
    finally:
        kafka.process.stop()


def publish(cfg: Settings, event: events.TrainingDataReady, timeout_s: float = 90.0) -> None:
    """Publish, retrying while a (re)started broker has not elected its partition leaders yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        producer = EventProducer(cfg.kafka, "edgecore/test")
        try:
            producer.publish(cfg.kafka.topic_training_data_ready, event, timeout_s=20)
            return
        except ServiceUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
        finally:
            producer.close()


def launched(launcher: DryRunLauncher) -> list[list[str]]:
    return [r["arguments"]["datasets"] for r in launcher.requests()]


def test_consumption_resumes_after_the_broker_restarts(
    private_kafka: PrivateBroker, unique: str, tmp_path: Path
) -> None:
    cfg, kafka = private_kafka.settings, private_kafka.service
    edge = f"restart-{unique}"
    launcher = DryRunLauncher(tmp_path / "requests")
    ledger = build_ledger(cfg, f"test-restart-{unique}")
    listener = Listener(cfg.kafka, cfg.listener.coalesce_s, cfg.buckets.training, launcher, ledger)
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop, f"test-restart-{unique}", 0.5))
    thread.start()
    try:
        publish(cfg, ready(cfg, edge, "v000001"))
        wait_for(lambda: launched(launcher), 90, what="the run of v000001")

        pid_before = kafka.process.pid()
        assert kafka.process.stop(), "the private broker was not running"

        def polls() -> float:
            return listener.registry.get_sample_value("edgecore_listener_polls_total") or 0.0

        before = polls()
        wait_for(lambda: polls() >= before + 10, 120, what="polls of the dead broker")
        assert thread.is_alive(), "the listener stopped while the broker was down"
        kafka.start(timeout_s=240)
        assert kafka.process.pid() not in (None, pid_before)

        publish(cfg, ready(cfg, edge, "v000002"))
        wait_for(lambda: len(launched(launcher)) >= 2, 180, what="the run of v000002 after the restart")
        # a re-delivery of v000001 after the restart would have launched once this is true
        group, topic = f"test-restart-{unique}", cfg.kafka.topic_training_data_ready
        wait_for(
            lambda: committed(cfg.kafka, group, topic) == end_offset(cfg.kafka, topic),
            120,
            what="all committed",
        )
    finally:
        stop.set()
        thread.join(timeout=60)
        ledger.close()

    assert not thread.is_alive()
    assert sorted(launched(launcher)) == [[f"{edge}@..v000001"], [f"{edge}@..v000002"]]
    consumed = listener.registry.get_sample_value("edgecore_listener_consumed_total") or 0.0
    assert consumed >= 2
