"""Reading a server's /metrics back: histograms per model, quantiles as PromQL, the version served."""

from __future__ import annotations

import math

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest

from foundation.errors import InvalidInput
from serving.metrics import set_serving_version
from serving.scrape import LATENCY_NAME, histograms, serving_versions

BUCKETS = (0.001, 0.002, 0.005, 0.01)


def exposition(observations: dict[str, list[float]]) -> str:
    registry = CollectorRegistry()
    latency = Histogram(LATENCY_NAME, "latency", ["model"], buckets=BUCKETS, registry=registry)
    for model, values in observations.items():
        series = latency.labels(model=model)
        for value in values:
            series.observe(value)
    return generate_latest(registry).decode()


def test_buckets_counts_and_sums_per_model_as_the_client_exposed_them() -> None:
    found = histograms(exposition({"a": [0.0005, 0.0015, 0.0015, 0.003, 0.02], "b": [0.004]}), LATENCY_NAME)

    assert set(found) == {"a", "b"}
    a = found["a"]
    assert a.bounds == (*BUCKETS, math.inf)
    assert a.counts() == [1, 2, 1, 0, 1]
    assert a.count == 5 and a.sum == pytest.approx(0.0265) and a.mean == pytest.approx(0.0053)
    assert found["b"].counts() == [0, 0, 1, 0, 0]


def test_quantiles_interpolate_inside_a_bucket_like_histogram_quantile() -> None:
    a = histograms(exposition({"a": [0.0005, 0.0015, 0.0015, 0.003, 0.02]}), LATENCY_NAME)["a"]

    # rank 2.5 of 5 falls in (0.001, 0.002], which holds observations 2..3
    assert a.quantile(0.5) == pytest.approx(0.00175)
    assert a.quantile(0.0) == 0.0
    assert a.quantile(0.99) == 0.01  # in the +Inf bucket: the highest finite bound
    with pytest.raises(InvalidInput):
        a.quantile(1.5)


def test_a_histogram_with_no_observations_has_no_quantile() -> None:
    empty = histograms(exposition({"idle": []}), LATENCY_NAME)["idle"]

    assert empty.count == 0 and empty.counts() == [0, 0, 0, 0, 0]
    assert math.isnan(empty.quantile(0.5)) and math.isnan(empty.mean)


def test_other_metrics_and_bad_text_are_told_apart() -> None:
    assert histograms(exposition({"a": [0.001]}), "edgecore_prediction_confidence") == {}
    with pytest.raises(InvalidInput, match="not a histogram"):
        histograms(
            "# TYPE edgecore_inference_seconds counter\nedgecore_inference_seconds_total 3\n", LATENCY_NAME
        )
    with pytest.raises(InvalidInput, match="Prometheus"):
        histograms("edgecore_inference_seconds{model=\n", LATENCY_NAME)


def test_the_served_version_follows_a_swap_in_the_servers_own_gauge() -> None:
    set_serving_version("scrape-test-model", "v000001", None)
    assert serving_versions(generate_latest(REGISTRY).decode())["scrape-test-model"] == "v000001"
    set_serving_version("scrape-test-model", "v000002", "v000001")
    assert serving_versions(generate_latest(REGISTRY).decode())["scrape-test-model"] == "v000002"
