"""Reading a predictor's counters: what a rollout wave's error and unsure rates come from."""

from __future__ import annotations

from edge_sync.delivery.targets.counters import Counters, parse_counters

PAGE = """# TYPE edgecore_predictions_total counter
edgecore_predictions_total{model="north-products"} 120.0
edgecore_predictions_total{model="other"} 999.0
# TYPE edgecore_unrecognized_total counter
edgecore_unrecognized_total{model="north-products"} 30.0
# TYPE edgecore_inference_errors_total counter
edgecore_inference_errors_total{model="north-products"} 3.0
# TYPE edgecore_predictions_created gauge
edgecore_predictions_created{model="north-products"} 1.7e+09
"""


def test_only_the_model_s_own_series_are_counted() -> None:
    assert parse_counters(PAGE, "north-products") == Counters(predictions=120.0, unsure=30.0, errors=3.0)


def test_a_series_the_page_lacks_counts_zero() -> None:
    assert parse_counters("", "north-products") == Counters()


def test_rates_are_shares_of_what_was_answered_since_the_start() -> None:
    seen = Counters(120.0, 30.0, 3.0).since(Counters(20.0, 5.0, 1.0))

    assert seen == Counters(100.0, 25.0, 2.0)
    assert seen.unsure_rate() == 0.25 and seen.error_rate() == 2 / 102


def test_a_counter_that_went_down_is_read_as_a_restart_counting_from_zero() -> None:
    assert Counters(10.0, 1.0, 0.0).since(Counters(500.0, 40.0, 2.0)) == Counters(10.0, 1.0, 0.0)


def test_an_unsure_count_that_went_down_is_a_restart_too() -> None:
    assert Counters(150.0, 10.0, 0.0).since(Counters(100.0, 40.0, 0.0)) == Counters(150.0, 10.0, 0.0)
