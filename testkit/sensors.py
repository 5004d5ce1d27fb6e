"""A sensor model trained in seconds on generated telemetry and exported as the pipeline exports one."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from kafka import KafkaConsumer, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion

from components.anomaly import (
    evaluate,
    export_sensor_model,
    fit_texture,
    raw_windows,
    reconstruction_errors,
    train_autoencoder,
    windows,
)
from edge_sync.uplink.mqtt import results_topic
from edge_sync.uplink.sensor_intake import SensorIntake
from edge_sync.uplink.service import telemetry_batches
from edgecore.stack.site import EdgeSite
from edgecore.synthetic.telemetry import generate
from foundation.events import AnomalyDetected, parse
from foundation.messaging import connection
from foundation.sensor_model import Normalisation, SensorModel, texture_features
from foundation.settings import Settings
from foundation.telemetry import SENSORS
from serving.sensor_monitor import SensorMonitor
from serving.sensors import build_sensor_monitor


@dataclass(frozen=True)
class ExportedSensorModel:
    folder: Path
    keras: Any
    spec: SensorModel
    x: np.ndarray
    """The windows it was evaluated on, and their labels (0: normal)."""
    labels: np.ndarray
    raw: np.ndarray
    """The same windows with their gaps (NaN)."""


@dataclass(frozen=True)
class TelemetryWindows:
    """Windows of generated telemetry, kept together so that a selection or split cuts all three alike."""

    x: np.ndarray
    """The windows, gaps filled (what the autoencoder reads)."""
    labels: np.ndarray
    """Each window's label (0: normal; ``k + 1``: fault kind ``k``)."""
    raw: np.ndarray
    """The same windows with their gaps (NaN; what the texture detector reads)."""

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: Any) -> TelemetryWindows:
        return TelemetryWindows(self.x[index], self.labels[index], self.raw[index])

    @property
    def normal(self) -> TelemetryWindows:
        """The windows without a fault: all a model may learn from."""
        return self[self.labels == 0]

    def split(self, fraction: float) -> tuple[TelemetryWindows, TelemetryWindows]:
        """The first ``fraction`` of the windows (to train on) and the rest (held out), in order."""
        cut = int(len(self) * fraction)
        return self[:cut], self[cut:]

    @staticmethod
    def concatenate(parts: Sequence[TelemetryWindows]) -> TelemetryWindows:
        """Several machines' windows as one set, in the order given."""
        return TelemetryWindows(
            np.concatenate([p.x for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.raw for p in parts]),
        )


def telemetry_windows(
    machine: str, hours: float, seed: int, faults: int, stride: int = 10
) -> TelemetryWindows:
    """``hours`` of ``machine``'s generated telemetry with ``faults`` faults, as the model's windows.

    The one place tests and benches cut telemetry into windows, so that they all learn from
    and score windows as training cuts them (its size; ``stride`` 10 unless a bench wants more).
    """
    series = generate(machine, hours, seed=seed, faults=faults)
    x, labels = windows(series.values, series.labels, stride=stride)
    return TelemetryWindows(x, labels, raw_windows(series.values, stride=stride))


def export_sensor_model_for(machine: str, folder: Path, seed: int = 5) -> ExportedSensorModel:
    """Two days of ``machine``'s telemetry with six faults; thresholds chosen as evaluation chooses them."""
    data = telemetry_windows(machine, 48, seed, faults=6)
    train, held = data.normal.split(0.7)
    scale = Normalisation.fit(train.x, SENSORS)
    model = train_autoencoder(scale.apply(train.x), epochs=8, seed=0)
    texture = fit_texture(train.raw, held.raw)
    result = evaluate(
        reconstruction_errors(model, scale.apply(held.x)),
        reconstruction_errors(model, scale.apply(data.x)),
        data.labels,
        texture=(
            texture.distances(texture_features(held.raw)),
            texture.distances(texture_features(data.raw)),
        ),
    )
    assert result.texture_threshold is not None
    spec = SensorModel(
        normalisation=scale,
        window=data.x.shape[1],
        threshold=result.threshold,
        texture=texture.with_threshold(result.texture_threshold),
    )
    metrics = {"recall": result.recall, "precision": result.precision}
    export_sensor_model(model, spec, folder, scale.apply(data.x[:64]), f"{machine}-sensors", metrics)
    return ExportedSensorModel(folder, model, spec, data.x, data.labels, data.raw)


@dataclass
class SensorFloor:
    """A store site's broker, the gateway's sensor intake with its monitor, and a device's MQTT client."""

    site: EdgeSite
    settings: Settings
    device: mqtt.Client
    device_name: str
    replies: queue.Queue[dict[str, object]]
    monitor: SensorMonitor

    def topic(self, machine: str) -> str:
        return f"edge/{self.site.edge}/sensors/{self.device_name}/{machine}"

    def publish(self, machine: str, readings: list[dict[str, object]], timeout_s: float = 30.0) -> None:
        info = self.device.publish(self.topic(machine), json.dumps({"readings": readings}).encode(), qos=1)
        info.wait_for_publish(timeout=timeout_s)


@contextmanager
def sensor_floor(core: Settings, model_folder: Path, edge: str, device_name: str) -> Iterator[SensorFloor]:
    """A store site (its own Mosquitto and MinIO; the core's Kafka) whose gateway scores readings."""
    site = EdgeSite(core, edge)
    token = site.issue_gateway_token("device", device_name)  # before the broker starts: in its first file
    site.up()
    shop = site.settings.updated(kafka={"topic_anomaly_detected": core.kafka.topic_anomaly_detected})
    monitor = build_sensor_monitor(shop, site.edge, model_folder, telemetry_batches(shop, site.edge))
    intake = SensorIntake(
        site.edge, shop.uplink.mqtt_host, shop.uplink.mqtt_port, site.plan.mqtt_password, monitor
    )
    replies: queue.Queue[dict[str, object]] = queue.Queue()
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_name, protocol=mqtt.MQTTv5)
    device.username_pw_set(device_name, token)
    device.on_message = lambda _c, _u, m: replies.put(json.loads(m.payload))
    try:
        intake.start()
        device.connect(shop.uplink.mqtt_host, shop.uplink.mqtt_port)
        device.loop_start()
        device.subscribe(results_topic(site.edge, device_name, "sensors"), qos=1)
        yield SensorFloor(site, shop, device, device_name, replies, monitor)
    finally:
        device.disconnect()
        device.loop_stop()
        intake.stop()
        site.down()


def anomaly_events(settings: Settings, edge: str) -> list[AnomalyDetected]:
    """Every ``anomaly-detected`` event of ``edge`` so far."""
    topic = settings.kafka.anomaly_topic(edge)
    consumer = KafkaConsumer(**connection(settings.kafka), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records = [r for batch in consumer.poll(timeout_ms=2000).values() for r in batch]
    finally:
        consumer.close()
    return [e.data for e in (parse(r.value) for r in records) if isinstance(e.data, AnomalyDetected)]


def telemetry_readings(
    machine: str, seed: int, start: int, count: int, fault: str | None = None
) -> list[dict[str, object]]:
    """Readings ``start`` to ``start + count`` of ``machine``'s generated telemetry (a reading per 10 s),
    as a device sends them; ``fault``: a fault of that kind (``edgecore.synthetic.telemetry``) over them."""
    hours = max(2.0, (start + count) * 10.0 / 3600.0)
    faults = [(fault, start * 10.0 / 3600.0, count * 10.0 / 3600.0)] if fault else []
    series = generate(machine, hours, seed=seed, faults=faults)
    return [
        {
            "t": series.start + i * series.period_s,
            "values": {
                s: (None if v != v else float(v)) for s, v in zip(SENSORS, series.values[i], strict=True)
            },
        }
        for i in range(start, start + count)
    ]
