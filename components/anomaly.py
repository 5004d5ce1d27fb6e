"""The sensor use case's model: an autoencoder of normal machine behaviour, and the threshold that gates it.

Readings become windows (``WINDOW`` readings of every sensor), scaled by per-sensor
statistics of normal windows; those statistics ship with the model, since the edge must
scale live readings the same way.  The autoencoder learns to reproduce normal windows
only; a window it reproduces badly is anomalous.  The threshold is a high quantile of the
reconstruction error on normal windows it did not train on, so the false-alarm rate is
chosen, not found; the gate then asks for precision and recall on windows labelled with
faults.  Plain arrays in and out: the steps that read datasets and write models wrap this.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from components.artefacts import configure_tensorflow

WINDOW = 30
"""Readings per window: 5 minutes at one reading every 10 s."""
NORMALISATION_FILE = "normalisation.json"

Array = npt.NDArray[np.float32]


def windows(
    values: np.ndarray, labels: np.ndarray, size: int = WINDOW, stride: int = 10
) -> tuple[Array, np.ndarray]:
    """``(n, size, sensors)`` windows and each one's label (the largest fault label inside it).

    A missing reading takes its sensor's last reading (its first, at the start of a series):
    a gap is how a sensor bus behaves, not a fault of the machine.
    """
    filled = _fill(np.asarray(values, dtype=np.float64))
    starts = range(0, len(filled) - size + 1, stride)
    x = np.stack([filled[s : s + size] for s in starts]).astype(np.float32)
    y = np.array([int(labels[s : s + size].max()) for s in starts], dtype=np.int8)
    return x, y


def _fill(values: np.ndarray) -> np.ndarray:
    out = values.copy()
    for j in range(out.shape[1]):
        column = out[:, j]
        known = np.flatnonzero(~np.isnan(column))
        if len(known) == 0:
            raise ValueError(f"sensor {j} has no reading at all")
        last = np.maximum.accumulate(np.where(~np.isnan(column), np.arange(len(column)), -1))
        column[:] = np.where(last >= 0, column[np.maximum(last, 0)], column[known[0]])
    return out


@dataclass(frozen=True)
class Normalisation:
    """Per-sensor mean and spread of normal windows; the edge scales live windows by the same."""

    sensors: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, normal: Array, sensors: tuple[str, ...]) -> Normalisation:
        flat = normal.reshape(-1, normal.shape[-1])
        std = np.maximum(flat.std(axis=0), 1e-6)
        return cls(sensors, tuple(float(m) for m in flat.mean(axis=0)), tuple(float(s) for s in std))

    def apply(self, x: Array) -> Array:
        return ((x - np.array(self.mean, np.float32)) / np.array(self.std, np.float32)).astype(np.float32)

    def save(self, folder: Path) -> None:
        (folder / NORMALISATION_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> Normalisation:
        raw = json.loads((folder / NORMALISATION_FILE).read_text())
        return cls(tuple(raw["sensors"]), tuple(raw["mean"]), tuple(raw["std"]))


def train_autoencoder(normal: Array, epochs: int = 30, seed: int = 0, threads: int = 2) -> Any:
    """A dense autoencoder of scaled normal windows (flattened; a bottleneck of 12)."""
    tf = configure_tensorflow(threads)
    import keras

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    size = int(np.prod(normal.shape[1:]))
    model = keras.Sequential(
        [
            keras.layers.Input(shape=normal.shape[1:]),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(12, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(size),
            keras.layers.Reshape(normal.shape[1:]),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(normal, normal, epochs=epochs, batch_size=64, shuffle=True, verbose=0)
    return model


def reconstruction_errors(model: Any, x: Array) -> np.ndarray:
    """Mean squared error of each window against the model's reproduction of it."""
    reproduced = model.predict(x, batch_size=256, verbose=0)
    return np.asarray(np.mean((reproduced - x) ** 2, axis=(1, 2)), dtype=np.float64)


@dataclass(frozen=True)
class AnomalyEvaluation:
    threshold: float
    """Reconstruction error above which a window is anomalous."""
    false_alarm_rate: float
    """Share of held-out normal windows over the threshold."""
    precision: float
    recall: float
    recall_by_label: dict[int, float]
    passed: bool
    reasons: tuple[str, ...]


def evaluate(
    normal_errors: np.ndarray,
    test_errors: np.ndarray,
    test_labels: np.ndarray,
    quantile: float = 0.995,
    min_precision: float = 0.8,
    min_recall: float = 0.6,
) -> AnomalyEvaluation:
    """Threshold at ``quantile`` of held-out normal errors; precision and recall on labelled windows."""
    threshold = float(np.quantile(normal_errors, quantile))
    flagged = test_errors > threshold
    faulty = test_labels > 0
    hits = int(np.sum(flagged & faulty))
    precision = hits / int(flagged.sum()) if flagged.any() else 0.0
    recall = hits / int(faulty.sum()) if faulty.any() else 0.0
    by_label = {int(k): float(flagged[test_labels == k].mean()) for k in np.unique(test_labels[faulty])}
    reasons = []
    if precision < min_precision:
        reasons.append(f"precision {precision:.3f} < {min_precision}")
    if recall < min_recall:
        reasons.append(f"recall {recall:.3f} < {min_recall}")
    return AnomalyEvaluation(
        threshold,
        float(np.mean(normal_errors > threshold)),
        precision,
        recall,
        by_label,
        not reasons,
        tuple(reasons),
    )
