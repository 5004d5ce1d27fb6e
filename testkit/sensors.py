"""A sensor model trained in seconds on generated telemetry and exported as the pipeline exports one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.anomaly import (
    evaluate,
    export_sensor_model,
    reconstruction_errors,
    train_autoencoder,
    windows,
)
from edgecore.synthetic.telemetry import SENSORS, generate
from foundation.sensor_model import Normalisation, SensorModel


@dataclass(frozen=True)
class ExportedSensorModel:
    folder: Path
    keras: Any
    spec: SensorModel
    x: np.ndarray
    """The windows it was evaluated on, and their labels (0: normal)."""
    labels: np.ndarray


def export_sensor_model_for(machine: str, folder: Path, seed: int = 5) -> ExportedSensorModel:
    """Two days of ``machine``'s telemetry with six faults; the threshold chosen as evaluation chooses it."""
    series = generate(machine, 48, seed=seed, faults=6)
    x, y = windows(series.values, series.labels)
    normal = x[y == 0]
    scale = Normalisation.fit(normal, SENSORS)
    model = train_autoencoder(scale.apply(normal), epochs=8, seed=0)
    result = evaluate(
        reconstruction_errors(model, scale.apply(normal)), reconstruction_errors(model, scale.apply(x)), y
    )
    spec = SensorModel(normalisation=scale, window=x.shape[1], threshold=result.threshold)
    export_sensor_model(
        model, spec, folder, scale.apply(x[:64]), f"{machine}-sensors", {"recall": result.recall}
    )
    return ExportedSensorModel(folder, model, spec, x, y)
