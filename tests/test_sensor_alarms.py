"""Sensor readings over MQTT to an alarm on Kafka: a store site's own Mosquitto and MinIO, the core's Kafka.

A device logs in to the store's broker with its own token and publishes readings of a
machine on ``edge/<edge>/sensors/<device>/<machine>``; the gateway's intake windows and
scores them with a real sensor model (trained here, exported to LiteRT) and, when K of
the machine's last N windows are anomalous, announces ``anomaly-detected`` and keeps the
window in the store's bucket.
"""

from __future__ import annotations

import json
import queue
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import pytest
from kafka import KafkaConsumer, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import REGISTRY

from edge_sync.uplink.mqtt import MqttIntake, results_topic
from edge_sync.uplink.service import build_gateway
from edgecore.stack import Stack
from edgecore.stack.mosquitto import MosquittoInstall
from edgecore.stack.settings import StackSettings
from edgecore.stack.site import EdgeSite
from edgecore.synthetic.telemetry import SENSORS, generate
from foundation.events import AnomalyDetected, parse
from foundation.layout import Layout, Location
from foundation.messaging import connection
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from serving.sensors import build_sensor_monitor
from testkit.conditions import wait_for
from testkit.sensors import export_sensor_model_for

DEVICE, MACHINE = "plc-1", "press-1"
SEED = 5
TIMEOUT_S = 30.0


@dataclass
class Floor:
    """The store's broker and gateway intake with a sensor monitor, and a device's MQTT client."""

    site: EdgeSite
    settings: Settings
    device: mqtt.Client
    replies: queue.Queue[dict[str, object]]

    def publish(self, machine: str, readings: list[dict[str, object]]) -> None:
        topic = f"edge/{self.site.edge}/sensors/{DEVICE}/{machine}"
        info = self.device.publish(topic, json.dumps({"readings": readings}).encode(), qos=1)
        info.wait_for_publish(timeout=TIMEOUT_S)

    def alarms(self) -> list[AnomalyDetected]:
        """Every ``anomaly-detected`` event on this test's topic so far."""
        topic = self.settings.kafka.topic_anomaly_detected
        consumer = KafkaConsumer(**connection(self.settings.kafka), enable_auto_commit=False)
        try:
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            records = [r for batch in consumer.poll(timeout_ms=2000).values() for r in batch]
        finally:
            consumer.close()
        return [e.data for e in (parse(r.value) for r in records) if isinstance(e.data, AnomalyDetected)]


@pytest.fixture(scope="module")
def floor(stack: Stack, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Floor]:
    if MosquittoInstall(StackSettings()).binary() is None:
        pytest.skip("no mosquitto on this machine (no system package and no apt-get to fetch one)")
    model = export_sensor_model_for(MACHINE, tmp_path_factory.mktemp("sensor-model") / "v000001", SEED)
    core = settings.updated(
        state_dir=tmp_path_factory.mktemp("core"),
        kafka={"topic_anomaly_detected": f"test-anomaly-{uuid.uuid4().hex[:10]}"},
    )
    site = EdgeSite(core, "sensor-shop")
    token = site.issue_gateway_token("device", DEVICE)  # before the broker starts: in its first password file
    site.up()
    shop = site.settings.updated(kafka={"topic_anomaly_detected": core.kafka.topic_anomaly_detected})
    gateway = build_gateway(shop, site.edge)
    monitor = build_sensor_monitor(shop, site.edge, model.folder)
    intake = MqttIntake(
        gateway, shop.uplink.mqtt_host, shop.uplink.mqtt_port, site.plan.mqtt_password, readings=monitor
    )
    intake.start()
    replies: queue.Queue[dict[str, object]] = queue.Queue()
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=DEVICE, protocol=mqtt.MQTTv5)
    device.username_pw_set(DEVICE, token)
    device.on_message = lambda _c, _u, m: replies.put(json.loads(m.payload))
    device.connect(shop.uplink.mqtt_host, shop.uplink.mqtt_port)
    device.loop_start()
    device.subscribe(results_topic(site.edge, DEVICE, "sensors"), qos=1)
    yield Floor(site, shop, device, replies)
    device.disconnect()
    device.loop_stop()
    intake.stop()
    gateway.outbox.close()
    site.down()


def readings(start: int, count: int, shift: float = 0.0) -> list[dict[str, object]]:
    """The machine's normal telemetry (the first hours of the series the model learnt) as a device sends
    it; ``shift``: its temperature raised by that many °C."""
    series = generate(MACHINE, 2, seed=SEED)
    rows = []
    for i in range(start, start + count):
        reading = {s: (None if v != v else float(v)) for s, v in zip(SENSORS, series.values[i], strict=True)}
        if reading["temperature_c"] is not None:
            reading["temperature_c"] += shift
        rows.append({"t": series.start + i * series.period_s, "values": reading})
    return rows


def windows_scored(machine: str) -> float:
    return REGISTRY.get_sample_value("edgecore_sensor_windows_total", {"machine": machine}) or 0.0


def test_normal_readings_raise_no_alarm(floor: Floor) -> None:
    floor.publish("press-2", readings(0, 300))

    wait_for(lambda: windows_scored("press-2") >= 27, TIMEOUT_S, what="the readings scored")
    assert [a for a in floor.alarms() if a.machine == "press-2"] == []


def test_a_machine_running_hot_raises_one_alarm_with_its_window_kept_at_the_store(floor: Floor) -> None:
    floor.publish(MACHINE, readings(0, 180))
    floor.publish(MACHINE, readings(180, 180, shift=25.0))

    [alarm] = wait_for(
        lambda: [a for a in floor.alarms() if a.machine == MACHINE], TIMEOUT_S, what="an alarm"
    )

    assert (alarm.edge, alarm.anomalous, alarm.of) == (floor.site.edge, 3, 5)
    assert alarm.error > alarm.threshold
    bucket = Layout(floor.settings.buckets).edge_bucket(floor.site.edge)
    kept = json.loads(ObjectStore(floor.settings.s3).get_bytes(Location(bucket, alarm.window_key)))
    assert kept["machine"] == MACHINE and len(kept["readings"]) == 30


def test_readings_of_an_unknown_sensor_are_refused_to_the_device_without_repeating_them(floor: Floor) -> None:
    floor.publish(MACHINE, [{"t": 1.0, "values": {"secret_sensor_x": 1.0}}])

    reply = floor.replies.get(timeout=TIMEOUT_S)

    assert reply["status"] == 400 and reply["machine"] == MACHINE
    assert "sensors this model does not read" in str(reply["reason"])
    assert "secret_sensor_x" not in str(reply["reason"])
