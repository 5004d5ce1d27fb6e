"""Reading a model server's ``/metrics`` back: histograms per model and the version served.

For whoever looks at a running edge without a Prometheus server (a notebook, a smoke
check): the text exposition is parsed with ``prometheus_client``'s own parser, so what
is read is exactly what a Prometheus scrape would store.  Quantiles are estimated from
the cumulative buckets the way PromQL's ``histogram_quantile`` does (linear inside a
bucket), so a figure here matches the same query on a dashboard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client import Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from foundation.errors import InvalidInput
from serving.metrics import CONFIDENCE, LATENCY, SERVING_VERSION


def _name(collector: Histogram | Gauge) -> str:
    """The family name the server exposes, taken from the collector itself so the two never drift."""
    return next(iter(collector.describe())).name


LATENCY_NAME = _name(LATENCY)
CONFIDENCE_NAME = _name(CONFIDENCE)
SERVING_VERSION_NAME = _name(SERVING_VERSION)


@dataclass(frozen=True)
class HistogramSnapshot:
    """One labelled histogram at scrape time: cumulative counts per upper bound (``le``)."""

    bounds: tuple[float, ...]
    """Upper bounds in increasing order, ``+Inf`` last."""
    cumulative: tuple[float, ...]
    count: float
    sum: float

    def counts(self) -> list[float]:
        """Observations per bucket (not cumulative), for a bar chart."""
        return [c - p for p, c in zip((0.0, *self.cumulative[:-1]), self.cumulative, strict=True)]

    def quantile(self, q: float) -> float:
        """The q-quantile estimated as PromQL does; NaN when nothing was observed."""
        if not 0.0 <= q <= 1.0:
            raise InvalidInput(f"quantile {q} is not between 0 and 1")
        if self.count <= 0:
            return math.nan
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for bound, cumulative in zip(self.bounds, self.cumulative, strict=True):
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower_bound  # above the highest finite bucket: its bound is all we know
                inside = cumulative - lower_count
                fraction = (rank - lower_count) / inside if inside else 1.0
                return lower_bound + (bound - lower_bound) * fraction
            lower_bound, lower_count = bound, cumulative
        return lower_bound

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan


def _families(text: str) -> list[Metric]:
    try:
        return list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise InvalidInput(f"not a Prometheus text exposition: {exc}") from exc


def histograms(text: str, name: str, label: str = "model") -> dict[str, HistogramSnapshot]:
    """The histogram ``name`` in a text exposition, keyed by the value of ``label``."""
    buckets: dict[str, list[tuple[float, float]]] = {}
    totals: dict[str, dict[str, float]] = {}
    for family in _families(text):
        if family.name != name:
            continue
        if family.type != "histogram":
            raise InvalidInput(f"metric {name} is a {family.type}, not a histogram")
        for sample in family.samples:
            key = sample.labels.get(label, "")
            if sample.name == f"{name}_bucket":
                buckets.setdefault(key, []).append((float(sample.labels["le"]), sample.value))
            elif sample.name in (f"{name}_count", f"{name}_sum"):
                totals.setdefault(key, {})[sample.name.rsplit("_", 1)[1]] = sample.value
    found: dict[str, HistogramSnapshot] = {}
    for key, pairs in buckets.items():
        pairs.sort()
        bounds, cumulative = zip(*pairs, strict=True)
        total = totals.get(key, {})
        found[key] = HistogramSnapshot(
            bounds, cumulative, total.get("count", cumulative[-1]), total.get("sum", math.nan)
        )
    return found


def serving_versions(text: str) -> dict[str, str]:
    """Model -> the version its server says it serves (the gauge set to 1)."""
    found: dict[str, str] = {}
    for family in _families(text):
        if family.name == SERVING_VERSION_NAME:
            for sample in family.samples:
                if sample.value == 1 and "model" in sample.labels and "version" in sample.labels:
                    found[sample.labels["model"]] = sample.labels["version"]
    return found
