"""Building the edge's sensor monitor from the settings: I/O happens here, at the composition root."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from foundation.background import in_background
from foundation.errors import InvalidInput
from foundation.layout import MANIFEST, Layout, Location
from foundation.manifest import Manifest
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from serving.alarm_webhook import AlarmWebhook
from serving.alarms import Alarms
from serving.anomaly import WindowScorer
from serving.anomaly_reports import AnomalyReports
from serving.metrics import SensorMetrics
from serving.sensor_monitor import ReadingsRecorder, SensorMonitor
from serving.sensor_sync import SensorModelSync, SensorSlot


@dataclass(frozen=True)
class SensorOutlets:
    """Where every version's alarms go: built once per gateway, shared by the versions it loads."""

    edge: str
    store: ObjectStore
    layout: Layout
    producer: EventProducer
    topic: str
    webhook: AlarmWebhook | None
    metrics: SensorMetrics
    recorder: ReadingsRecorder | None = None
    standing: dict[str, Location] = field(default_factory=dict)
    """Each raised alarm's kept window, by machine (``AnomalyReports``)."""


def sensor_outlets(settings: Settings, edge: str, recorder: ReadingsRecorder | None = None) -> SensorOutlets:
    kafka = settings.kafka
    if kafka.security_protocol != "SASL_SSL":  # an edge's login may write its alarms, not create topics
        ensure_topics(kafka, extra=[kafka.anomaly_topic(edge)])
    store = ObjectStore(settings.s3)
    layout = Layout(settings.buckets)
    store.ensure_bucket(layout.edge_bucket(edge))
    producer = EventProducer(kafka, f"/edgecore/sensors/{edge}")
    webhook = build_webhook(settings)
    topic = kafka.anomaly_topic(edge)
    return SensorOutlets(edge, store, layout, producer, topic, webhook, SensorMetrics(edge), recorder)


def monitor_of(outlets: SensorOutlets, folder: Path) -> SensorMonitor:
    """The monitor of a sensor model version folder (``components.anomaly.export_sensor_model``)."""
    scorer = WindowScorer(folder)
    manifest = Manifest.from_bytes((folder / MANIFEST).read_bytes(), str(folder / MANIFEST))
    reports = AnomalyReports(
        outlets.edge,
        manifest.name,
        manifest.version,
        scorer.spec.threshold,
        scorer.spec.texture.threshold if scorer.spec.texture else None,
        scorer.spec.sensors,
        outlets.store,
        outlets.layout,
        outlets.producer,
        outlets.topic,
        outlets.webhook,
        outlets.standing,
    )
    alarms = Alarms(scorer.spec.alert_k, scorer.spec.alert_n)
    return SensorMonitor(scorer, alarms, reports, outlets.metrics, recorder=outlets.recorder)


def build_sensor_monitor(
    settings: Settings, edge: str, folder: Path, recorder: ReadingsRecorder | None = None
) -> SensorMonitor:
    """The monitor of one fixed version folder (``edge gateway --sensor-model DIR``)."""
    return monitor_of(sensor_outlets(settings, edge, recorder), folder)


@contextmanager
def following_sensor_model(
    settings: Settings, edge: str, recorder: ReadingsRecorder | None = None
) -> Iterator[SensorSlot]:
    """A slot that scores with the newest delivered version of the edge's sensor model, kept current
    by a thread (``serving.sensor_sync``) for as long as the block runs."""
    outlets = sensor_outlets(settings, edge, recorder)
    slot = SensorSlot(outlets.metrics)
    sync = SensorModelSync(
        edge,
        outlets.store,
        outlets.layout,
        settings.state_dir / "sensor-models" / edge,
        slot,
        lambda folder: monitor_of(outlets, folder),
    )
    with in_background(lambda stop: sync.run(stop, settings.delivery.poll_s), "sensor-model-sync"):
        yield slot


def build_webhook(settings: Settings) -> AlarmWebhook | None:
    """The alarm webhook of the settings, if one is set (its token read from its file here)."""
    url, token_file = settings.serving.alarm_webhook_url, settings.serving.alarm_webhook_token_file
    if url is None:
        return None
    token = None
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise InvalidInput(
                f"cannot read the alarm webhook's token file {token_file}: {exc.strerror}"
            ) from exc
    return AlarmWebhook(url.get_secret_value(), token)
