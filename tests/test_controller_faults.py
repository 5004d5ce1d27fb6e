"""Fault tests of the edge sync controller against real MinIO, real Kafka and a real API server."""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge_sync.delivery.controller import SyncContext, reconcile
from edge_sync.delivery.edges import dump_fleet
from edge_sync.delivery.service import build_fleet
from edge_sync.delivery.sources import consumer_group
from foundation.events import ModelPublished
from foundation.layout import Location, edge_model_name
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.delivery import EdgeCluster, corrupt_in_place, deliver, model_files, subprocess_env
from testkit.kafka import committed, end_offset

EDGE = "store-7"


def _serving_v1(ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster) -> str:
    v1 = deliver(store, ctx.layout, EDGE, "v000001").uri
    cluster.add_edge(EDGE, v1)
    reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)  # confirms v1 (no rollout: same URI)
    return v1


def _refused_and_v1_serving(ctx: SyncContext, cluster: EdgeCluster, v1: str) -> None:
    writes = cluster.writes(EDGE)
    outcome = reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)
    assert (outcome.action, outcome.version, outcome.serving) == ("refused", "v000002", "v000001")
    assert cluster.storage_uri(EDGE) == v1
    assert cluster.writes(EDGE) == writes  # the target was not touched
    assert ctx.metrics.value("edgecore_edge_sync_failures_total", edge=EDGE, reason="integrity") == 1


def test_a_corrupted_model_file_is_refused_and_the_old_version_keeps_serving(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    v1 = _serving_v1(ctx, store, cluster)
    prefix = deliver(store, ctx.layout, EDGE, "v000002")
    tflite = Location(prefix.bucket, prefix.key + "model.tflite")
    good = model_files("v000002")["model.tflite"]
    corrupt_in_place(store, tflite, bytes([good[0] ^ 0xFF]) + good[1:])

    _refused_and_v1_serving(ctx, cluster, v1)


def test_a_truncated_model_file_is_refused(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    v1 = _serving_v1(ctx, store, cluster)
    files = model_files("v000002")
    truncated = {**files, "model.tflite": files["model.tflite"][:1000]}
    deliver(store, ctx.layout, EDGE, "v000002", files=truncated, manifest_files=files)

    _refused_and_v1_serving(ctx, cluster, v1)


def test_a_file_whose_sha256_differs_from_the_manifest_is_refused(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    v1 = _serving_v1(ctx, store, cluster)
    files = model_files("v000002")
    promised = {**files, "labels.json": b'["APPLE-RED", "LIME-GREEM"]'}  # same size, other digest
    deliver(store, ctx.layout, EDGE, "v000002", files=files, manifest_files=promised)

    _refused_and_v1_serving(ctx, cluster, v1)


def test_a_file_the_manifest_lists_but_the_bucket_lacks_is_refused(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    v1 = _serving_v1(ctx, store, cluster)
    files = model_files("v000002")
    deliver(
        store,
        ctx.layout,
        EDGE,
        "v000002",
        files={k: v for k, v in files.items() if k != "model_card.md"},
        manifest_files=files,
    )

    _refused_and_v1_serving(ctx, cluster, v1)


def _wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_with_kafka_down_bucket_polling_still_delivers(
    edge_settings: Settings, ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    _serving_v1(ctx, store, cluster)
    settings = edge_settings.updated(kafka={"bootstrap": f"127.0.0.1:{_unused_port()}"})
    fleet = build_fleet(settings, [cluster.spec(EDGE)], {EDGE: cluster.target(EDGE)}, ctx.metrics)
    stop = threading.Event()
    runner = threading.Thread(target=fleet.run, args=(stop, "kafka-down", 0.5))
    runner.start()
    try:
        v2 = deliver(store, ctx.layout, EDGE, "v000002").uri
        assert _wait_for(
            lambda: (
                cluster.annotations(EDGE).get("edgecore.io/synced-at") is not None
                and cluster.storage_uri(EDGE) == v2
            )
        )
    finally:
        stop.set()
        runner.join(30)
    assert cluster.uri_changes(EDGE)[-1] == v2


def _published(ctx: SyncContext, version: str) -> ModelPublished:
    model = edge_model_name(EDGE)
    files = model_files(version)
    return ModelPublished(
        model=model,
        version=version,
        registry_uri=f"s3://edgecore-models/models/{model}/{version}/",
        edges=[EDGE],
        files={n: hashlib.sha256(d).hexdigest() for n, d in files.items()},
        labels=["APPLE-RED", "LIME-GREEN"],
    )


def test_a_model_published_event_delivers_and_a_repeated_event_changes_nothing(
    edge_settings: Settings, ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster, unique: str
) -> None:
    v1 = _serving_v1(ctx, store, cluster)
    rollouts = ctx.metrics.value("edgecore_edge_sync_rollouts_total", edge=EDGE)
    settings = edge_settings.updated(
        kafka={
            "topic_model_published": f"t-published-{unique}",
            "topic_dead_letter": f"t-dlq-{unique}",
            "topic_training_data_ready": f"t-ready-{unique}",
            "topic_s3_events": f"t-s3-{unique}",
        },
        delivery={"poll_s": 3600.0},
    )
    ensure_topics(settings.kafka)
    fleet = build_fleet(settings, [cluster.spec(EDGE)], {EDGE: cluster.target(EDGE)}, ctx.metrics)
    stop = threading.Event()
    runner = threading.Thread(target=fleet.run, args=(stop, unique, 0.5))
    runner.start()
    producer = EventProducer(settings.kafka, "/tests/publish")
    try:
        assert _wait_for(lambda: fleet.outcomes.get(EDGE) is not None)  # the start-up poll is done
        v2 = deliver(store, ctx.layout, EDGE, "v000002").uri
        event = _published(ctx, "v000002")
        producer.publish(settings.kafka.topic_model_published, event)
        producer.publish(settings.kafka.topic_model_published, event)
        assert _wait_for(
            lambda: (
                cluster.storage_uri(EDGE) == v2
                and cluster.annotations(EDGE).get("edgecore.io/synced-at") is not None
            )
        )
        # the repeated event is handled too: both committed, and the pass it caused is over
        group, topic = consumer_group(unique), settings.kafka.topic_model_published
        assert _wait_for(lambda: committed(settings.kafka, group, topic) == end_offset(settings.kafka, topic))
        assert _wait_for(fleet.idle)
    finally:
        producer.close()
        stop.set()
        runner.join(30)
    assert cluster.uri_changes(EDGE) == [v1, v2]
    assert ctx.metrics.value("edgecore_edge_sync_rollouts_total", edge=EDGE) == rollouts + 1


def test_a_controller_killed_mid_rollout_converges_after_restart_without_a_second_rollout(
    edge_settings: Settings, ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster, tmp_path: Path
) -> None:
    v1 = _serving_v1(ctx, store, cluster)
    v2 = deliver(store, ctx.layout, EDGE, "v000002").uri
    fleet_file = tmp_path / "edges.json"
    dump_fleet([cluster.spec(EDGE)], fleet_file)
    cluster.kserve.hold.set()  # the new generation will not be Ready while the first controller runs
    edgecore = Path(sys.executable).with_name("edgecore")
    first = subprocess.Popen(
        [str(edgecore), "edges", "run", "--once", "--fleet", str(fleet_file)],
        env=subprocess_env(edge_settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_for(lambda: cluster.storage_uri(EDGE) == v2, timeout_s=90)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    assert "edgecore.io/synced-at" not in cluster.annotations(EDGE)  # killed before it confirmed
    cluster.kserve.hold.clear()

    outcome = reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)  # the restarted controller

    assert (outcome.action, outcome.serving) == ("rolled-out", "v000002")
    assert cluster.uri_changes(EDGE) == [v1, v2]  # one rollout, resumed rather than repeated
    assert "edgecore.io/synced-at" in cluster.annotations(EDGE)


class _Forwarder:
    """A TCP relay to MinIO opened in the middle of a test: an S3 outage that ends."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self._server = socket.create_server(("127.0.0.1", port))
        self._target = target
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def close(self) -> None:
        self._server.close()


def test_a_sync_that_failed_for_a_passing_outage_is_retried_before_the_next_poll(
    edge_settings: Settings, ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    _serving_v1(ctx, store, cluster)
    v2 = deliver(store, ctx.layout, EDGE, "v000002").uri
    port = _unused_port()
    settings = edge_settings.updated(
        s3={"endpoint": f"http://127.0.0.1:{port}"},
        kafka={"bootstrap": f"127.0.0.1:{_unused_port()}"},
        delivery={"poll_s": 3600.0},
    )
    fleet = build_fleet(settings, [cluster.spec(EDGE)], {EDGE: cluster.target(EDGE)}, ctx.metrics)
    stop = threading.Event()
    runner = threading.Thread(target=fleet.run, args=(stop, "s3-outage", 0.5))
    runner.start()
    relay: _Forwarder | None = None
    try:
        assert _wait_for(lambda: (o := fleet.outcomes.get(EDGE)) is not None and o.action == "failed")
        assert cluster.storage_uri(EDGE) != v2
        relay = _Forwarder(port, (edge_settings.s3.host, edge_settings.s3.port))
        assert _wait_for(
            lambda: (
                cluster.storage_uri(EDGE) == v2
                and cluster.annotations(EDGE).get("edgecore.io/synced-at") is not None
            ),
            timeout_s=60,
        )
    finally:
        stop.set()
        runner.join(30)
        if relay is not None:
            relay.close()
    assert cluster.uri_changes(EDGE)[-1] == v2
    assert ctx.metrics.value("edgecore_edge_sync_failures_total", edge=EDGE, reason="unavailable") >= 1
