"""A Prometheus histogram read at one moment, and its quantiles the way PromQL estimates them.

Shared by whoever reads a predictor's ``/metrics`` without a Prometheus server: a notebook
(``serving.scrape``), a sync controller reporting its edge's latency to the core
(``edge_sync.delivery.reporter``).  Quantiles are linear inside a bucket, as
``histogram_quantile`` does, so a figure here matches the same query on a dashboard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from foundation.errors import InvalidInput


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

    def since(self, before: HistogramSnapshot | None) -> HistogramSnapshot:
        """What was observed after ``before``: everything, where a count went down (a restarted
        server) or the buckets changed (another build of the server)."""
        if (
            before is None
            or before.bounds != self.bounds
            or any(now < then for now, then in zip(self.cumulative, before.cumulative, strict=True))
        ):
            return self
        return HistogramSnapshot(
            self.bounds,
            tuple(now - then for now, then in zip(self.cumulative, before.cumulative, strict=True)),
            self.count - before.count,
            self.sum - before.sum,
        )

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan


def families(text: str) -> list[Metric]:
    try:
        return list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise InvalidInput(f"not a Prometheus text exposition: {exc}") from exc


def histograms(text: str, name: str, label: str = "model") -> dict[str, HistogramSnapshot]:
    """The histogram ``name`` in a text exposition, keyed by the value of ``label``."""
    buckets: dict[str, list[tuple[float, float]]] = {}
    totals: dict[str, dict[str, float]] = {}
    for family in families(text):
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
