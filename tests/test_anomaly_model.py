"""The sensor use case's model: windows of readings, an autoencoder of normal behaviour, a gated threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.anomaly import evaluate, reconstruction_errors, train_autoencoder, windows
from edgecore.synthetic.telemetry import generate
from foundation.sensor_model import Normalisation, SensorModel
from foundation.telemetry import FAULT_KINDS, SENSORS


def test_a_missing_reading_takes_its_sensor_s_last_one_and_a_window_carries_its_worst_label() -> None:
    values = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, 3.0], [4.0, 4.0]])
    labels = np.array([0, 0, 3, 0])

    x, y = windows(values, labels, size=2, stride=1)

    assert x.tolist() == [[[2.0, 1.0], [2.0, 1.0]], [[2.0, 1.0], [2.0, 3.0]], [[2.0, 3.0], [4.0, 4.0]]]
    assert y.tolist() == [0, 3, 3]


def test_the_normalisation_that_ships_with_the_model_reads_back_the_same(tmp_path: Path) -> None:
    normal = np.random.default_rng(0).normal(5.0, 2.0, size=(50, 30, 4)).astype(np.float32)
    fitted = Normalisation.fit(normal, SENSORS)

    SensorModel(normalisation=fitted, window=30, threshold=0.5).save(tmp_path)
    scaled = SensorModel.load(tmp_path).normalisation.apply(normal).reshape(-1, 4)

    assert np.allclose(scaled.mean(axis=0), 0, atol=1e-4) and np.allclose(scaled.std(axis=0), 1, atol=1e-3)


def test_the_gate_names_what_falls_short() -> None:
    normal = np.linspace(0.0, 1.0, 1001)
    result = evaluate(
        normal, np.array([2.0, 2.0, 0.1, 0.1]), np.array([1, 1, 2, 0]), quantile=0.995, min_recall=0.9
    )

    assert result.threshold == pytest.approx(0.995)
    assert result.false_alarm_rate == pytest.approx(0.005, abs=1e-3)
    assert (result.precision, result.recall) == (1.0, pytest.approx(2 / 3))
    assert result.recall_by_label == {1: 1.0, 2: 0.0}
    assert not result.passed and result.reasons == ("recall 0.667 < 0.9",)


@pytest.mark.slow
def test_an_autoencoder_of_normal_windows_flags_spikes_and_level_shifts_and_few_normal_windows() -> None:
    series = generate("press-1", 72, seed=3, faults=8)
    x, y = windows(series.values, series.labels)
    half = len(x) // 2
    normal = x[:half][y[:half] == 0]
    cut = int(len(normal) * 0.8)
    scale = Normalisation.fit(normal[:cut], SENSORS)

    model = train_autoencoder(scale.apply(normal[:cut]), epochs=20, seed=0)
    result = evaluate(
        reconstruction_errors(model, scale.apply(normal[cut:])),
        reconstruction_errors(model, scale.apply(x[half:])),
        y[half:],
    )

    caught = {FAULT_KINDS[label - 1]: share for label, share in result.recall_by_label.items()}
    assert caught["spike"] >= 0.9 and caught["level_shift"] >= 0.9, caught
    assert result.precision >= 0.8, result
