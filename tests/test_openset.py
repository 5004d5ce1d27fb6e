"""Calibrated confidence and the flag for products a model was not trained on."""

from __future__ import annotations

import numpy as np
import pytest

from foundation.errors import IntegrityError
from foundation.openset import OpenSet, calibrated, decide, fit

CLASSES = 3
FEATURES = 8


def outputs(labels: np.ndarray, rng: np.random.Generator, spread: float = 0.2) -> np.ndarray:
    """Model outputs for photos of ``labels``: overconfident probabilities, then features near
    each product's own direction (a label of -1 is a product the model never saw)."""
    rows = []
    for label in labels:
        centre = np.zeros(FEATURES, dtype=np.float32)
        if label >= 0:
            centre[label] = 1.0
            logits = rng.normal(0, 1, CLASSES) + 4.0 * np.eye(CLASSES)[label]
        else:
            centre[CLASSES:] = 1.0  # a direction no known product has
            logits = rng.normal(0, 1, CLASSES) + 4.0 * np.eye(CLASSES)[rng.integers(CLASSES)]
        features = centre + rng.normal(0, spread, FEATURES)
        probabilities = np.exp(logits * 3) / np.exp(logits * 3).sum()
        rows.append(np.concatenate([probabilities, features]))
    return np.asarray(rows, dtype=np.float32)


@pytest.fixture
def calibration() -> OpenSet:
    rng = np.random.default_rng(0)
    train = rng.integers(0, CLASSES, 600).astype(np.int32)
    held_out = rng.integers(0, CLASSES, 300).astype(np.int32)
    return fit((outputs(train, rng), train), (outputs(held_out, rng), held_out), CLASSES, flag_rate=0.02)


def test_photos_of_unseen_products_are_flagged_and_known_ones_are_not(calibration: OpenSet) -> None:
    rng = np.random.default_rng(1)
    known = rng.integers(0, CLASSES, 500)
    assert decide(outputs(known, rng), CLASSES, calibration, 0.5).recognized.mean() >= 0.95
    unseen = np.full(200, -1)
    assert decide(outputs(unseen, rng), CLASSES, calibration, 0.5).recognized.mean() <= 0.05


def test_the_temperature_softens_a_model_more_confident_than_it_is_right() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, CLASSES, 400).astype(np.int32)
    answered = np.where(rng.random(400) < 0.7, labels, (labels + 1) % CLASSES)  # right 70 % of the time
    rows = outputs(answered, rng)  # yet ~100 % sure
    calibration = fit((rows, answered.astype(np.int32)), (rows, labels), CLASSES)
    confidence = decide(rows, CLASSES, calibration, 0.5).confidence
    assert calibration.temperature > 1.0 and abs(float(confidence.mean()) - 0.7) < 0.1


def test_calibration_keeps_the_predicted_product_and_sums_to_one() -> None:
    probabilities = np.asarray([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    scaled = calibrated(probabilities, 2.0)
    assert (scaled.argmax(axis=1) == probabilities.argmax(axis=1)).all()
    assert np.allclose(scaled.sum(axis=1), 1.0) and scaled.max() < probabilities.max()


def test_a_version_without_calibration_flags_by_the_confidence_setting_alone() -> None:
    probabilities = np.asarray([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3]], dtype=np.float32)
    decision = decide(probabilities, CLASSES, None, 0.6)
    assert decision.recognized.tolist() == [True, False] and decision.similarity is None


def test_the_calibration_survives_its_file_and_a_damaged_file_is_refused(calibration: OpenSet) -> None:
    assert OpenSet.from_bytes(calibration.to_bytes(), "t") == calibration
    with pytest.raises(IntegrityError, match="not an open-set calibration"):
        OpenSet.from_bytes(b'{"temperature": -1}', "t")


def test_a_model_without_features_cannot_be_calibrated() -> None:
    labels = np.zeros(4, dtype=np.int32)
    probabilities = np.full((4, CLASSES), 1 / CLASSES, dtype=np.float32)
    with pytest.raises(IntegrityError, match="no feature output"):
        fit((probabilities, labels), (probabilities, labels), CLASSES)
