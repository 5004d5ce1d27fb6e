"""Prometheus metrics of the edge predictor, exposed on KServe's own ``/metrics``.

They live in the default registry, which is the one KServe's REST server renders.
The unrecognized rate is a ratio of two counters, the Prometheus way::

    rate(edgecore_unrecognized_total[5m]) / rate(edgecore_predictions_total[5m])
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY = Histogram(
    "edgecore_inference_seconds",
    "Time from request decoded to prediction ready (decode, preprocess, model, top-k).",
    ["model"],
    buckets=(0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5),
)
CONFIDENCE = Histogram(
    "edgecore_prediction_confidence",
    "Top-1 probability of each prediction.",
    ["model"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
PREDICTIONS = Counter("edgecore_predictions", "Images predicted.", ["model"])
UNRECOGNIZED = Counter(
    "edgecore_unrecognized", "Predictions flagged unsure by the version's open-set rule.", ["model"]
)
ERRORS = Counter(
    "edgecore_inference_errors",
    "Requests that failed inside the server (bad input is not counted).",
    ["model"],
)
CAPTURED = Counter("edgecore_captures", "Images flagged unsure, saved to the edge bucket.")
CAPTURE_DROPPED = Counter(
    "edgecore_capture_dropped", "Images flagged unsure, not saved because the capture queue was full."
)
CAPTURE_FAILED = Counter(
    "edgecore_capture_failed", "Images flagged unsure whose upload to the edge bucket failed."
)
SERVING_VERSION = Gauge(
    "edgecore_serving_model_version",
    "1 for the model version being served (label version), per model.",
    ["model", "version"],
)
SWAPS = Counter("edgecore_model_swaps", "Model versions switched in while serving.", ["model"])


@dataclass(frozen=True)
class ModelMetrics:
    """The labelled series of one model, bound once (``labels()`` costs a lock and a dict lookup)."""

    latency: Histogram
    confidence: Histogram
    predictions: Counter
    unrecognized: Counter
    errors: Counter
    swaps: Counter

    @classmethod
    def bind(cls, model: str) -> ModelMetrics:
        return cls(
            latency=LATENCY.labels(model=model),
            confidence=CONFIDENCE.labels(model=model),
            predictions=PREDICTIONS.labels(model=model),
            unrecognized=UNRECOGNIZED.labels(model=model),
            errors=ERRORS.labels(model=model),
            swaps=SWAPS.labels(model=model),
        )


def set_serving_version(model: str, version: str, previous: str | None) -> None:
    if previous is not None and previous != version:
        SERVING_VERSION.remove(model, previous)
    SERVING_VERSION.labels(model=model, version=version).set(1)


class SensorMetrics:
    """The sensor monitor's series, in a registry of their own: the process that runs the monitor
    (the store's gateway) serves them beside its own on its /metrics port."""

    def __init__(self, edge: str, registry: CollectorRegistry | None = None) -> None:
        self.edge = edge
        self.registry = registry or CollectorRegistry()
        labels = ["edge", "machine"]
        self.windows = Counter(
            "edgecore_sensor_windows", "Sensor windows scored at the edge.", labels, registry=self.registry
        )
        self.anomalous = Counter(
            "edgecore_sensor_anomalous_windows",
            "Sensor windows over the model's threshold.",
            labels,
            registry=self.registry,
        )
        self.alarms = Counter(
            "edgecore_sensor_alarms",
            "Alarms raised: K of a machine's last N windows anomalous.",
            labels,
            registry=self.registry,
        )
        self.raised = Gauge(
            "edgecore_sensor_alarm_raised",
            "1 while a machine's alarm is raised.",
            labels,
            registry=self.registry,
        )

    def scored(self, machine: str, windows: int, anomalous: int) -> None:
        self.windows.labels(edge=self.edge, machine=machine).inc(windows)
        self.anomalous.labels(edge=self.edge, machine=machine).inc(anomalous)

    def alarm(self, machine: str, raised: bool) -> None:
        self.raised.labels(edge=self.edge, machine=machine).set(1 if raised else 0)
        if raised:
            self.alarms.labels(edge=self.edge, machine=machine).inc()

    def windows_scored(self, machine: str) -> float:
        return (
            self.registry.get_sample_value(
                "edgecore_sensor_windows_total", {"edge": self.edge, "machine": machine}
            )
            or 0.0
        )
