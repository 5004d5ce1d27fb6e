"""Building the edge's sensor monitor from the settings: I/O happens here, at the composition root."""

from __future__ import annotations

from pathlib import Path

from foundation.errors import InvalidInput
from foundation.layout import MANIFEST, Layout
from foundation.manifest import Manifest
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from serving.alarm_webhook import AlarmWebhook
from serving.alarms import Alarms
from serving.anomaly import WindowScorer
from serving.anomaly_reports import AnomalyReports
from serving.metrics import SensorMetrics
from serving.sensor_monitor import SensorMonitor


def build_sensor_monitor(settings: Settings, edge: str, folder: Path) -> SensorMonitor:
    """The monitor of a sensor model version folder (``components.anomaly.export_sensor_model``)."""
    scorer = WindowScorer(folder)
    manifest = Manifest.from_bytes((folder / MANIFEST).read_bytes(), str(folder / MANIFEST))
    kafka = settings.kafka
    if kafka.security_protocol != "SASL_SSL":  # an edge's login may write its alarms, not create topics
        ensure_topics(kafka, extra=[kafka.anomaly_topic(edge)])
    store = ObjectStore(settings.s3)
    layout = Layout(settings.buckets)
    store.ensure_bucket(layout.edge_bucket(edge))
    reports = AnomalyReports(
        edge,
        manifest.name,
        manifest.version,
        scorer.spec.threshold,
        scorer.spec.texture.threshold if scorer.spec.texture else None,
        scorer.spec.sensors,
        store,
        layout,
        EventProducer(kafka, f"/edgecore/sensors/{edge}"),
        kafka.anomaly_topic(edge),
        build_webhook(settings),
    )
    alarms = Alarms(scorer.spec.alert_k, scorer.spec.alert_n)
    return SensorMonitor(scorer, alarms, reports, SensorMetrics(edge))


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
