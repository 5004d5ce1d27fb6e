"""Calibrated confidence and the unsure threshold shipped with each model version."""

from __future__ import annotations

import numpy as np
import pytest

from foundation.errors import IntegrityError
from foundation.openset import OpenSet, Outputs, calibrated, decide, fit, output_names

CLASSES = 3


def probabilities(answered: np.ndarray, sharpness: float, rng: np.random.Generator) -> Outputs:
    """A model's outputs (no cosine) that name ``answered`` with a confidence set by ``sharpness``."""
    logits = rng.normal(0, 1, (len(answered), CLASSES)) + sharpness * np.eye(CLASSES)[answered]
    scaled = np.exp(logits - logits.max(axis=1, keepdims=True))
    return Outputs((scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32))


def test_photos_the_model_is_unsure_of_are_flagged_and_sure_ones_are_not() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, 400).astype(np.int32)
    calibration = fit(probabilities(labels, 8.0, rng), labels, flag_rate=0.02)
    sure = probabilities(rng.integers(0, CLASSES, 500), 8.0, rng)
    unsure = probabilities(rng.integers(0, CLASSES, 200), 0.5, rng)  # as for a product it never saw
    assert decide(sure, calibration, 0.5).recognized.mean() >= 0.95
    assert decide(unsure, calibration, 0.5).recognized.mean() <= 0.05


def test_the_temperature_softens_a_model_more_confident_than_it_is_right() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, CLASSES, 400).astype(np.int32)
    answered = np.where(rng.random(400) < 0.7, labels, (labels + 1) % CLASSES)  # right 70 % of the time
    rows = probabilities(answered, 12.0, rng)  # yet ~100 % sure
    calibration = fit(rows, labels)
    confidence = decide(rows, calibration, 0.5).confidence
    assert calibration.temperature > 1.0 and abs(float(confidence.mean()) - 0.7) < 0.1


def test_calibration_keeps_the_predicted_product_and_sums_to_one() -> None:
    rows = np.asarray([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    scaled = calibrated(rows, 2.0)
    assert (scaled.argmax(axis=1) == rows.argmax(axis=1)).all()
    assert np.allclose(scaled.sum(axis=1), 1.0) and scaled.max() < rows.max()


def test_a_version_without_calibration_flags_by_the_confidence_setting_alone() -> None:
    rows = Outputs(np.asarray([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3]], dtype=np.float32))
    assert decide(rows, None, 0.6).recognized.tolist() == [True, False]


def test_the_calibration_survives_its_file_and_a_damaged_file_is_refused() -> None:
    calibration = OpenSet(temperature=1.5, min_confidence=0.8, flag_rate=0.01)
    assert OpenSet.from_bytes(calibration.to_bytes(), "t") == calibration
    with pytest.raises(IntegrityError, match="not an open-set calibration"):
        OpenSet.from_bytes(b'{"temperature": -1}', "t")


def test_no_held_out_photos_is_no_calibration() -> None:
    with pytest.raises(IntegrityError, match="no held-out photos"):
        fit(Outputs(np.zeros((0, CLASSES), dtype=np.float32)), np.zeros(0, dtype=np.int32))


def test_where_the_model_outputs_its_largest_cosine_a_photo_is_judged_by_it() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, CLASSES, 400).astype(np.int32)
    held_out = probabilities(labels, 8.0, rng)
    calibration = fit(Outputs(held_out.probabilities, rng.uniform(0.6, 0.9, 400).astype(np.float32)), labels)
    assert calibration.min_cosine is not None and 0.6 <= calibration.min_cosine < 0.61
    sure = probabilities(np.zeros(2, dtype=np.int64), 12.0, rng).probabilities  # a softmax sure of both
    decision = decide(Outputs(sure, np.asarray([0.8, 0.3], dtype=np.float32)), calibration, 0.5)
    assert decision.recognized.tolist() == [True, False]  # the second is far from every product


def test_a_cosine_threshold_with_no_cosine_from_the_model_is_refused() -> None:
    calibration = OpenSet(temperature=1.0, min_confidence=0.5, flag_rate=0.01, min_cosine=0.6)
    with pytest.raises(IntegrityError, match="outputs no cosine"):
        decide(probabilities(np.zeros(1, dtype=np.int64), 8.0, np.random.default_rng(4)), calibration, 0.5)


def test_a_models_outputs_are_found_by_name_or_as_its_only_one() -> None:
    assert output_names(["cosine", "probabilities"]) == ("probabilities", "cosine")
    assert output_names(["output_0"]) == ("output_0", None)
    with pytest.raises(IntegrityError, match="include no 'probabilities'"):
        output_names(["output_0", "output_1"])
