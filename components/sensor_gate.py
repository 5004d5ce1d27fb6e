"""The sensor gate: its thresholds, and the candidate against the model the edge serves, scored on the
candidate's own test windows (``components.sensor_steps.evaluate_sensors`` applies it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.anomaly import QUANTILE, faults_caught
from foundation.layout import SAVED_MODEL_DIR
from foundation.sensor_model import SENSOR_MODEL_FILE, SensorModel, texture_features


@dataclass(frozen=True)
class SensorGate:
    quantile: float = QUANTILE
    """Of held-out normal windows, the share under each threshold."""
    min_precision: float = 0.8
    min_recall: float = 0.6
    max_regression: float = 0.02
    """How far precision may fall below the edge's current model on the same windows."""
    max_faults_lost: int = 0
    """Labelled faults the edge's current model alarms on that the candidate may leave without an
    alarm.  Faults, not the share of faulty windows flagged: that share moved by several points with
    the seed alone, past any tolerance that would still catch a worse model."""


def production_figures(
    production: Path, w: dict[str, np.ndarray], sensors: tuple[str, ...]
) -> dict[str, float]:
    """Precision, recall and faults caught of the edge's current model on the candidate's test windows,
    decided by its own scaling, thresholds and alarm (``SensorModel.flags``); empty when it reads
    other windows."""
    if not (production / SENSOR_MODEL_FILE).is_file() or not np.any(w["test_y"] > 0):
        return {}
    spec = SensorModel.load(production)
    if spec.sensors != sensors or spec.window != w["test_x"].shape[1]:
        return {}
    import tensorflow as tf

    served = tf.saved_model.load(str(production / SAVED_MODEL_DIR))
    x = spec.normalisation.apply(w["test_x"])
    reproduced = np.asarray(served.serve(tf.constant(x)))
    errors = np.mean((reproduced - x) ** 2, axis=(1, 2)).astype(np.float64)
    distances = spec.texture.distances(texture_features(w["test_raw"])) if spec.texture else None
    flagged, faulty = spec.flags(errors, distances), w["test_y"] > 0
    hits = int(np.sum(flagged & faulty))
    return {
        "precision": hits / int(flagged.sum()) if flagged.any() else 0.0,
        "recall": hits / int(faulty.sum()),
        "faults_caught": float(faults_caught(flagged, w["test_fault"], spec.alert_k, spec.alert_n)),
    }


def regressions(
    precision: float, caught: int, faults: int, before: dict[str, float], gate: SensorGate
) -> list[str]:
    """Where the candidate falls behind the edge's model (``before``: ``production_figures``)."""
    reasons = []
    if precision < before["precision"] - gate.max_regression:
        reasons.append(
            f"precision {precision:.3f} is below the edge's current model's {before['precision']:.3f}"
        )
    if caught < before["faults_caught"] - gate.max_faults_lost:
        reasons.append(
            f"{caught} of {faults} labelled faults raise an alarm; the edge's current model"
            f" alarms on {before['faults_caught']:.0f}"
        )
    return reasons
