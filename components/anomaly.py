"""The sensor use case's model: an autoencoder of normal machine behaviour, and the threshold that gates it.

Readings become windows (``WINDOW`` readings of every sensor), scaled by per-sensor
statistics of normal windows; those statistics ship with the model
(``foundation.sensor_model``), since the edge must scale live readings the same way.
The autoencoder learns to reproduce normal windows only; a window it reproduces badly is
anomalous.  The threshold is a high quantile of the
reconstruction error on normal windows it did not train on, so the false-alarm rate is
chosen, not found; the gate then asks for precision and recall on windows labelled with
faults.  Plain arrays in and out: the steps that read datasets and write models wrap this;
:func:`export_sensor_model` writes the version the edge loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from components.artefacts import configure_tensorflow, write_serving_files
from components.export import UNPUBLISHED
from foundation.layout import MANIFEST
from foundation.manifest import Manifest, entries_for_dir
from foundation.sensor_model import ALERT_K, ALERT_N, SensorModel, Texture, texture_features

COVER_MARGIN = 1.1
"""How far above the highest window of a dismissed alarm a threshold raised for it lies: the same
behaviour again differs by its noise."""
WINDOW = 30
"""Readings per window: 5 minutes at one reading every 10 s."""
STRIDE = 10
"""Readings between one window's start and the next: the alarm's K of N counts windows this far apart."""

Array = npt.NDArray[np.float32]
QUANTILE = 0.999
"""Of held-out normal windows, the share under each threshold: chosen with the edge's 3-of-5 alarm in
mind, by ``bench/sensor_quality.py``'s alarm columns (``docs/performance.md``)."""


def windows(
    values: np.ndarray, labels: np.ndarray, size: int = WINDOW, stride: int = STRIDE
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


def raw_windows(values: np.ndarray, size: int = WINDOW, stride: int = STRIDE) -> Array:
    """The same windows as :func:`windows`, gaps left as NaN (what texture is read from)."""
    raw = np.asarray(values, dtype=np.float32)
    return np.stack([raw[s : s + size] for s in range(0, len(raw) - size + 1, stride)])


def fit_texture(normal_raw: Array, held_out_raw: Array, quantile: float = QUANTILE) -> Texture:
    """The texture detector of normal windows, its threshold the ``quantile`` of held-out normal distances."""
    texture = Texture.fit(texture_features(normal_raw))
    return texture.with_threshold(
        float(np.quantile(texture.distances(texture_features(held_out_raw)), quantile))
    )


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
    texture_threshold: float | None
    false_alarm_rate: float
    """Share of held-out normal windows over the threshold."""
    precision: float
    recall: float
    recall_by_label: dict[int, float]
    passed: bool
    reasons: tuple[str, ...]
    flagged: np.ndarray
    """Which test windows either detector flags."""


def evaluate(
    normal_errors: np.ndarray,
    test_errors: np.ndarray,
    test_labels: np.ndarray,
    quantile: float = QUANTILE,
    min_precision: float = 0.8,
    min_recall: float = 0.5,
    texture: tuple[np.ndarray, np.ndarray] | None = None,
    cover: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> AnomalyEvaluation:
    """Threshold at ``quantile`` of held-out normal errors; precision and recall on labelled windows.

    ``texture``: held-out normal and test windows' texture distances; a window over either
    threshold is flagged, as the edge flags it.  ``cover``: errors and texture distances of
    windows staff called normal (dismissed alarms); a threshold under ``COVER_MARGIN`` times the
    highest of them is raised to that, and the gate then tells what it costs.
    """
    threshold = _covering(float(np.quantile(normal_errors, quantile)), cover[0] if cover else None)
    flagged = test_errors > threshold
    texture_threshold = None
    normal_flagged = normal_errors > threshold
    if texture is not None:
        texture_threshold = _covering(float(np.quantile(texture[0], quantile)), cover[1] if cover else None)
        flagged |= texture[1] > texture_threshold
        normal_flagged |= texture[0] > texture_threshold
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
        texture_threshold,
        float(np.mean(normal_flagged)),
        precision,
        recall,
        by_label,
        not reasons,
        tuple(reasons),
        flagged,
    )


def alarmed_faults(flagged: np.ndarray, faults: np.ndarray, k: int = ALERT_K, n: int = ALERT_N) -> set[int]:
    """The labelled faults during which the edge's alarm (``k`` of ``n`` windows in a row flagged) is raised.

    ``faults`` names each test window's fault (-1: none), a fault's windows in time order.  What
    an operator counts, and steadier than the share of faulty windows flagged: a model that
    flags a slow fault a few windows later loses window recall, not the alarm.
    """
    caught = set()
    for fault in np.unique(faults[faults >= 0]):
        hits = np.asarray(flagged[faults == fault], dtype=np.int64)
        in_last_n = np.convolve(hits, np.ones(n, dtype=np.int64))[: len(hits)]
        if np.any(in_last_n >= k):
            caught.add(int(fault))
    return caught


def _covering(threshold: float, dismissed: np.ndarray | None) -> float:
    if dismissed is None or not len(dismissed):
        return threshold
    return max(threshold, float(np.max(dismissed)) * COVER_MARGIN)


def export_sensor_model(
    model: Any,
    spec: SensorModel,
    out: Path,
    samples: Array,
    name: str,
    metrics: dict[str, float],
    metadata: dict[str, Any] | None = None,
) -> Manifest:
    """A version folder the edge loads: ``model.tflite`` (checked against Keras on ``samples``, scaled),
    ``saved_model/``, ``sensor_model.json``, and the manifest of them all, last."""
    out.mkdir(parents=True, exist_ok=True)
    diff = write_serving_files(model, out, samples)
    spec.save(out)
    manifest = Manifest(
        kind="model",
        name=name,
        version=UNPUBLISHED,
        files=entries_for_dir(out),
        labels=list(spec.sensors),
        metrics=metrics,
        metadata={
            **(metadata or {}),
            "use_case": "sensors",
            "litert_max_abs_diff": diff,
            "window": spec.window,
        },
    )
    (out / MANIFEST).write_bytes(manifest.to_bytes())
    return manifest
