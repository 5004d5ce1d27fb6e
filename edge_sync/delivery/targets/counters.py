"""What a predictor has answered: the counters a rollout wave is judged by while it bakes.

The edge predictor exports them on its ``/metrics`` (``serving/metrics.py``): predictions,
predictions not above the confidence threshold (unsure), requests that failed inside
the server, and the inference latency histogram (what an edge reports to the core).
Rates come from two reads' difference, so a counter reset (new pods of a RawDeployment,
a restarted server) is read as "everything since the reset".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from foundation.errors import EdgecoreError
from foundation.histogram import HistogramSnapshot, families, histograms

MAX_METRICS_BYTES = 4 * 1024 * 1024
"""A predictor's /metrics page is a few KB; a larger answer is not one."""

SERIES = {
    "edgecore_predictions": "predictions",
    "edgecore_unrecognized": "unsure",
    "edgecore_inference_errors": "errors",
}
LATENCY = "edgecore_inference_seconds"


@dataclass(frozen=True)
class Counters:
    predictions: float = 0.0
    unsure: float = 0.0
    errors: float = 0.0
    latency: HistogramSnapshot | None = field(default=None, compare=False)

    def since(self, before: Counters) -> Counters:
        """What was counted after ``before``; everything, where a counter went down (a reset)."""
        if (
            self.predictions < before.predictions
            or self.unsure < before.unsure
            or self.errors < before.errors
        ):
            return self
        return Counters(
            self.predictions - before.predictions,
            self.unsure - before.unsure,
            self.errors - before.errors,
            self.latency.since(before.latency) if self.latency is not None else None,
        )

    @property
    def requests(self) -> float:
        return self.predictions + self.errors

    def unsure_rate(self) -> float:
        return self.unsure / self.predictions if self.predictions else 0.0

    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def parse_counters(text: str, model: str) -> Counters:
    """The model's three counters and latency from a Prometheus text page (absent series count 0)."""
    found = dict.fromkeys(SERIES.values(), 0.0)
    for family in families(text):
        for sample in family.samples:
            name = SERIES.get(sample.name.removesuffix("_total"))
            if name is not None and sample.labels.get("model") == model:
                found[name] += float(sample.value)
    return Counters(**found, latency=histograms(text, LATENCY).get(model))


def read_counters(http: httpx.Client, url: str, model: str, timeout_s: float) -> Counters | None:
    """``url``'s counters for ``model``; None when the page cannot be had (the wave is then judged
    on time alone)."""
    try:
        with http.stream("GET", url, timeout=timeout_s) as resp:
            if resp.status_code != 200:
                return None
            body = b""
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_METRICS_BYTES:
                    return None
        return parse_counters(body.decode("utf-8", "replace"), model)
    except (httpx.HTTPError, ValueError, EdgecoreError):
        return None
