"""The made-up outliers a model learns to be unsure of."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from components.artefacts import configure_tensorflow
from components.outliers import with_outliers

CLASSES = 4


@pytest.fixture(scope="module")
def tf() -> Any:
    return configure_tensorflow(1)


def _batch(labels: list[int], colourful: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (len(labels), 8, 8, 3)).astype(np.float32)
    if not colourful:
        x[..., 1] = x[..., 2] = x[..., 0]
    return x, np.asarray(labels, dtype=np.int32)


def test_half_a_batch_of_outliers_joins_it_with_uniform_targets(tf: Any) -> None:
    x, y = _batch([0, 1, 2, 3, 0, 1, 2, 3])
    images, targets, weights = (np.asarray(t) for t in with_outliers(tf, x, y, CLASSES, 0.5))
    assert images.shape == (12, 8, 8, 3)
    np.testing.assert_array_equal(images[:8], x)
    np.testing.assert_array_equal(targets[:8].argmax(axis=1), y)
    np.testing.assert_allclose(targets[8:], 1.0 / CLASSES)
    assert (weights[:8] == 1.0).all() and (weights[8:] == 0.5).all()


def test_an_outlier_that_may_still_be_a_real_product_weighs_nothing(tf: Any) -> None:
    x, y = _batch([2, 1, 1, 2], colourful=False)  # halves of the same product; grey images recoloured
    _, _, weights = (np.asarray(t) for t in with_outliers(tf, x, y, CLASSES, 0.5))
    assert weights[4:].tolist() == [0.0, 0.0]
