"""Building the edge's sensor monitor from the settings: I/O happens here, at the composition root."""

from __future__ import annotations

from pathlib import Path

from foundation.layout import MANIFEST, Layout
from foundation.manifest import Manifest
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from serving.alarms import Alarms
from serving.anomaly import WindowScorer
from serving.anomaly_reports import AnomalyReports
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
    )
    return SensorMonitor(scorer, Alarms(scorer.spec.alert_k, scorer.spec.alert_n), reports)
