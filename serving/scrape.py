"""Reading a model server's ``/metrics`` back: histograms per model and the version served.

For whoever looks at a running edge without a Prometheus server (a notebook, a smoke
check): the text exposition is parsed with ``prometheus_client``'s own parser, so what
is read is exactly what a Prometheus scrape would store; quantiles come from
``foundation.histogram``, estimated as PromQL does.
"""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

from foundation.histogram import HistogramSnapshot, families, histograms
from serving.metrics import CONFIDENCE, LATENCY, SERVING_VERSION


def _name(collector: Histogram | Gauge) -> str:
    """The family name the server exposes, taken from the collector itself so the two never drift."""
    return next(iter(collector.describe())).name


LATENCY_NAME = _name(LATENCY)
CONFIDENCE_NAME = _name(CONFIDENCE)
SERVING_VERSION_NAME = _name(SERVING_VERSION)


def serving_versions(text: str) -> dict[str, str]:
    """Model -> the version its server says it serves (the gauge set to 1)."""
    found: dict[str, str] = {}
    for family in families(text):
        if family.name == SERVING_VERSION_NAME:
            for sample in family.samples:
                if sample.value == 1 and "model" in sample.labels and "version" in sample.labels:
                    found[sample.labels["model"]] = sample.labels["version"]
    return found


__all__ = ["CONFIDENCE_NAME", "LATENCY_NAME", "HistogramSnapshot", "histograms", "serving_versions"]
