"""The training listener: exactly one run per dataset version, against the real Kafka and MinIO."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer
from pydantic import SecretStr

from edge_sync.uplink.gateway import create_app as gateway_app
from edge_sync.uplink.service import build_gateway, build_shipper
from edgecore.stack import Stack, enable_notifications
from edgecore.synthetic.telemetry import generate
from edgecore.telemetry_upload import upload_telemetry
from foundation import events
from foundation.credentials import new_token
from foundation.layout import Layout
from foundation.messaging import DLQ_REASON, EventProducer, ensure_topics
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from foundation.telemetry import write_csv
from pipelines.listener import build_ledger
from testkit.conditions import wait_for
from testkit.kafka import committed, end_offset
from testkit.listener import listening
from testkit.uplink import free_port, front_door, gateway_tokens, image_bytes, serving

TOKEN, DEVICE, STAFF = new_token(), new_token(), new_token()


@pytest.fixture
def lsettings(stack: Stack, settings: Settings, unique: str, tmp_path: Path) -> Settings:
    cfg = settings.updated(
        state_dir=tmp_path / "state",
        buckets={"training": f"test-train-{unique}"},
        kafka={
            "topic_training_data_ready": f"test-tdr-{unique}",
            "topic_dead_letter": f"test-dlq-{unique}",
            "topic_s3_events": f"test-s3-{unique}",
        },
        listener={"coalesce_s": 0.0},
    )
    ensure_topics(cfg.kafka)
    return cfg


def ready(cfg: Settings, edge: str, version: str = "v000001") -> events.TrainingDataReady:
    layout = Layout(cfg.buckets)
    return events.TrainingDataReady(
        dataset=edge,
        version=version,
        edge=edge,
        labels=["COLA-330"],
        object_count=3,
        bucket=layout.training_bucket,
        prefix=layout.dataset_prefix(edge, version).key,
        manifest_sha256="0" * 64,
    )


def test_a_device_image_becomes_a_training_run_with_the_right_parameters(
    lsettings: Settings, settings: Settings, store: ObjectStore, unique: str, tmp_path: Path
) -> None:
    """Device → gateway → shipper → the core's front door over TLS → dataset → event → listener."""
    edge = f"e2e-{unique}"
    door_port = free_port()
    core = lsettings.updated(
        tls={"ca_file": settings.ca_file, "cert_file": settings.cert_file, "key_file": settings.key_file}
    )
    edge_cfg = lsettings.updated(
        state_dir=tmp_path / "edge",
        buckets={"edge_prefix": f"t{unique}-"},
        door={"url": f"https://127.0.0.1:{door_port}", "token": SecretStr(TOKEN)},
        tls={"ca_file": settings.ca_file},
    )
    gateway_tokens(edge_cfg, edge, devices={"camera-1": DEVICE}, staff={"manager": STAFF})
    producer = EventProducer(lsettings.kafka, "edgecore/test-receiver")
    gateway = build_gateway(edge_cfg, edge)
    shipper = build_shipper(edge_cfg, edge, gateway.outbox)
    images = [image_bytes(seed) for seed in (1, 2, 3)]
    with (
        serving(gateway_app(gateway), free_port()) as gw,
        front_door(core, {edge: TOKEN}, producer) as (_, door),
        serving(door, door_port, tls=core),
        listening(lsettings, unique, tmp_path) as running,
    ):
        for data in images:
            headers = {"Content-Type": "image/jpeg", "Authorization": f"Bearer {DEVICE}"}
            assert httpx.post(f"{gw}/v1/images/COLA-330", content=data, headers=headers).status_code == 201
        staff = {"Authorization": f"Bearer {STAFF}"}
        assert httpx.post(f"{gw}/v1/sets/COLA-330/complete", headers=staff).status_code == 202
        assert [r.outcome for r in shipper.ship_due()] == ["shipped"]

        requests = wait_for(running.launcher.requests, 60, what="a launched run")

    producer.close()
    assert len(requests) == 1
    assert requests[0]["arguments"] == {
        "edges": [edge],
        "datasets": [f"{edge}@..v000001"],
        "release": requests[0]["run_key"],
    }
    manifest = store.get_bytes(Layout(lsettings.buckets).dataset_manifest(edge, "v000001"))
    assert json.loads(manifest)["files"].keys() == {
        f"images/COLA-330/{hashlib.sha256(d).hexdigest()}.jpg" for d in images
    }
    assert running.metric("launched") == 1


def test_a_hundred_duplicate_events_launch_one_run(lsettings: Settings, unique: str, tmp_path: Path) -> None:
    producer = EventProducer(lsettings.kafka, "edgecore/test")
    event = ready(lsettings, f"dup-{unique}")
    for _ in range(100):
        producer.publish(lsettings.kafka.topic_training_data_ready, event)
    producer.close()

    with listening(lsettings, unique, tmp_path) as running:
        wait_for(running.caught_up, 120, what="all 100 records handled and committed")

    assert len(running.launcher.requests()) == 1
    assert (running.metric("launched"), running.metric("deduplicated")) == (1, 99)


def test_an_event_and_minio_s_own_notification_of_one_version_launch_one_run(
    lsettings: Settings, store: ObjectStore, settings: Settings, unique: str, tmp_path: Path
) -> None:
    lsettings = lsettings.updated(kafka={"topic_s3_events": settings.kafka.topic_s3_events})  # MinIO's
    layout = Layout(lsettings.buckets)
    store.ensure_bucket(layout.training_bucket)
    enable_notifications(store, layout.training_bucket)
    edge = f"notify-{unique}"
    image = layout.dataset_image(edge, "v000001", "COLA-330", "a" * 64, "jpg")
    store.put_bytes(image, b"not looked at")  # an object-created record that is not a manifest
    store.put_bytes(layout.dataset_manifest(edge, "v000001"), b"{}")
    producer = EventProducer(lsettings.kafka, "edgecore/test")
    producer.publish(lsettings.kafka.topic_training_data_ready, ready(lsettings, edge))
    producer.close()

    with listening(lsettings, unique, tmp_path) as running:
        wait_for(lambda: running.metric("deduplicated") >= 1, 60, what="the second source deduplicated")
        wait_for(running.caught_up, 120, what="every record handled, the image's among them")

    assert [r["arguments"]["datasets"] for r in running.launcher.requests()] == [[f"{edge}@..v000001"]]
    assert running.metric("ignored") >= 1
    assert running.metric("dead_lettered") == 0


def test_a_thousand_malformed_records_land_in_the_dead_letter_topic(
    lsettings: Settings, unique: str, tmp_path: Path
) -> None:
    producer = KafkaProducer(bootstrap_servers=lsettings.kafka.bootstrap_servers, linger_ms=20)
    bad = [b"", b"{", b"null", b'{"specversion": "1.0"}', json.dumps({"type": "nope"}).encode()]
    for i in range(1000):
        producer.send(
            lsettings.kafka.topic_training_data_ready, value=bad[i % len(bad)] + str(i).encode() * (i % 2)
        )
    producer.flush()
    producer.close()

    with listening(lsettings, unique, tmp_path) as running:
        wait_for(running.caught_up, 120, what="the 1000 records handled and committed")

    consumer = KafkaConsumer(
        lsettings.kafka.topic_dead_letter,
        bootstrap_servers=lsettings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    letters = list(consumer)
    consumer.close()
    assert len(letters) == 1000
    assert all(dict(r.headers)[DLQ_REASON] for r in letters)
    assert running.launcher.requests() == []


def test_a_burst_within_the_window_is_coalesced_into_one_run(
    lsettings: Settings, unique: str, tmp_path: Path
) -> None:
    cfg = lsettings.updated(listener={"coalesce_s": 2.0})
    producer = EventProducer(cfg.kafka, "edgecore/test")
    edges = [f"burst-{i}-{unique}" for i in range(3)]
    for edge in edges:
        producer.publish(cfg.kafka.topic_training_data_ready, ready(cfg, edge))
    producer.close()

    with listening(cfg, unique, tmp_path) as running:
        wait_for(running.caught_up, 60, what="all three handled and committed")
        wait_for(running.launcher.requests, 60, what="the coalesced run")

    requests = running.launcher.requests()
    assert len(requests) == 1
    assert requests[0]["arguments"] == {
        "edges": sorted(edges),
        "datasets": [f"{e}@..v000001" for e in sorted(edges)],
        "release": requests[0]["run_key"],
    }


def _telemetry_uploaded(
    lsettings: Settings, settings: Settings, store: ObjectStore, unique: str, tmp_path: Path, window_s: float
) -> tuple[Settings, str, str]:
    """A listener's settings on the shared S3-events topic (``window_s``: its coalescing window), and a
    plant's telemetry uploaded, which MinIO announces; the settings, a store's name and the plant's."""
    cfg = lsettings.updated(
        kafka={"topic_s3_events": settings.kafka.topic_s3_events}, listener={"coalesce_s": window_s}
    )
    layout = Layout(cfg.buckets)
    store.ensure_bucket(layout.training_bucket)
    enable_notifications(store, layout.training_bucket)
    plant = f"plant-{unique}"
    write_csv([generate("press-1", 1, seed=1)], tmp_path / "t.csv")
    upload_telemetry(store, layout, tmp_path / "t.csv", plant)
    return cfg, f"shop-{unique}", plant


def test_photos_and_telemetry_arriving_together_launch_each_their_own_pipeline(
    lsettings: Settings, store: ObjectStore, settings: Settings, unique: str, tmp_path: Path
) -> None:
    cfg, photos, plant = _telemetry_uploaded(lsettings, settings, store, unique, tmp_path, window_s=2.0)
    producer = EventProducer(cfg.kafka, "edgecore/test")
    producer.publish(cfg.kafka.topic_training_data_ready, ready(cfg, photos))
    producer.close()

    with listening(cfg, unique, tmp_path) as running:
        wait_for(lambda: len(running.launcher.requests()) >= 2, 120, what="a run per use case")

    runs = {r["pipeline"]: r["arguments"] for r in running.launcher.requests()}
    assert runs["edgecore-training"]["edges"] == [photos]
    assert runs["edgecore-sensors"]["edges"] == [plant]
    assert runs["edgecore-sensors"]["datasets"] == [f"{plant}-telemetry@..v000001"]


def test_each_use_case_waits_its_own_window_so_a_later_burst_is_not_split_by_an_earlier_one(
    lsettings: Settings, store: ObjectStore, settings: Settings, unique: str, tmp_path: Path
) -> None:
    cfg, photos, _ = _telemetry_uploaded(lsettings, settings, store, unique, tmp_path, window_s=8.0)

    with listening(cfg, unique, tmp_path) as running:
        wait_for(
            lambda: [dv.use_case for dv, _ in running.ledger.unassigned()] == ["sensors"],
            60,
            what="the telemetry version pending",
        )
        ((_, seen),) = running.ledger.unassigned()
        wait_for(lambda: time.time() - seen >= 4.0, 10, what="half the telemetry's window gone")
        producer = EventProducer(cfg.kafka, "edgecore/test")
        producer.publish(cfg.kafka.topic_training_data_ready, ready(cfg, photos))
        producer.close()
        wait_for(running.launcher.requests, 60, what="the sensor run, its window over")
        first = running.launcher.requests()
        wait_for(lambda: len(running.launcher.requests()) == 2, 60, what="the photos' run, in its own window")

    assert [r["pipeline"] for r in first] == ["edgecore-sensors"], "the photos were still in their window"
    runs = {r["pipeline"]: r["arguments"] for r in running.launcher.requests()}  # listed by run key
    assert runs["edgecore-training"]["edges"] == [photos]


def test_a_version_arriving_after_a_newer_one_was_launched_trains_within_the_newer_history(
    lsettings: Settings, unique: str, tmp_path: Path
) -> None:
    edge = f"late-{unique}"
    producer = EventProducer(lsettings.kafka, "edgecore/test")
    producer.publish(lsettings.kafka.topic_training_data_ready, ready(lsettings, edge, "v000002"))
    with listening(lsettings, unique, tmp_path) as running:
        wait_for(running.launcher.requests, 60, what="the run of v000002")
        producer.publish(lsettings.kafka.topic_training_data_ready, ready(lsettings, edge, "v000001"))
        wait_for(lambda: len(running.launcher.requests()) == 2, 60, what="the run of the late v000001")
    producer.close()

    histories = sorted(r["arguments"]["datasets"] for r in running.launcher.requests())
    assert histories == [[f"{edge}@..v000002"], [f"{edge}@..v000002"]]


def test_a_graceful_stop_inside_the_window_launches_nothing_and_the_next_start_launches_it(
    lsettings: Settings, unique: str, tmp_path: Path
) -> None:
    waiting = lsettings.updated(listener={"coalesce_s": 3600.0})
    edge = f"stop-{unique}"
    producer = EventProducer(waiting.kafka, "edgecore/test")
    producer.publish(waiting.kafka.topic_training_data_ready, ready(waiting, edge))
    producer.close()

    with listening(waiting, unique, tmp_path) as running:
        wait_for(running.caught_up, 60, what="the event recorded and committed")
    assert running.launcher.requests() == []

    with listening(lsettings, unique, tmp_path) as restarted:  # same group and ledger, window over
        wait_for(restarted.launcher.requests, 60, what="the pending version launched")

    assert [r["arguments"]["datasets"] for r in restarted.launcher.requests()] == [[f"{edge}@..v000001"]]


# -- crash between launching and committing --------------------------------------------
def test_a_listener_killed_after_launching_and_before_committing_launches_no_second_run(
    lsettings: Settings, unique: str, tmp_path: Path
) -> None:
    group = f"test-listener-{unique}"
    topic = lsettings.kafka.topic_training_data_ready
    edge = f"kill-{unique}"
    # The event, then (same key, same partition, same fetch) 300 records for the DLQ: the
    # listener launches, then spends a while dead-lettering before it commits the batch.
    message = events.to_message(ready(lsettings, edge), "edgecore/test")
    key = message.key.encode() if isinstance(message.key, str) else message.key
    producer = KafkaProducer(bootstrap_servers=lsettings.kafka.bootstrap_servers, linger_ms=50)
    producer.send(topic, value=message.value, key=key, headers=list(message.headers.items()))
    for i in range(300):
        producer.send(topic, value=b"garbage %d" % i, key=key)
    producer.flush()
    producer.close()
    requests_dir = tmp_path / "requests"
    env = {
        **os.environ,
        "EDGECORE_TRAINING_BUCKET": lsettings.buckets.training,
        "EDGECORE_TOPIC_TRAINING_DATA_READY": topic,
        "EDGECORE_TOPIC_DEAD_LETTER": lsettings.kafka.topic_dead_letter,
        "EDGECORE_STATE_DIR": str(lsettings.state_dir),
        "EDGECORE_LISTENER_METRICS_PORT": str(free_port()),
    }
    command = [
        str(Path(sys.executable).parent / "edgecore"),
        "edge",
        "listen",
        "--out",
        str(requests_dir),
        "--group",
        group,
    ]
    log = (tmp_path / "listener.log").open("ab")

    first = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    try:
        wait_for(lambda: list(requests_dir.glob("*.json")), 240, every_s=0.005, what="the run request")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert committed(lsettings.kafka, group, topic) == 0, (
        "the kill came after the commit: scenario not exercised"
    )

    env["EDGECORE_LISTENER_METRICS_PORT"] = str(free_port())
    second = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    try:
        wait_for(
            lambda: committed(lsettings.kafka, group, topic) == end_offset(lsettings.kafka, topic),
            240,
            what="the restarted listener to consume everything",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            code = second.wait(timeout=60)
        finally:
            second.kill()
    assert code == 0  # graceful: it stops polling, closes the consumer and exits

    assert len(list(requests_dir.glob("*.json"))) == 1
    runs = build_ledger(lsettings, group).runs()
    assert [d["version"] for d in json.loads(runs[0]["request"])["datasets"]] == ["v000001"]
    assert [(r["status"], r["run_id"]) for r in runs] == [("launched", f"dry-run-{runs[0]['run_key']}")]
