"""What a sensor (anomaly) model version ships beside its LiteRT file: read by training and the edge alike.

The edge must turn live readings into exactly the windows training saw: the same
sensors in the same order, the same window length, scaled by the statistics of the
normal windows the autoencoder learnt.  It must also judge them the same way: the
reconstruction-error threshold evaluation chose, and how many of the last windows must
pass it before an alert is raised (one noisy window is not a failing machine).  All of
it lives in one file, ``sensor_model.json``, so the pair cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from foundation.errors import IntegrityError, InvalidInput

SENSOR_MODEL_FILE = "sensor_model.json"
Array = npt.NDArray[np.float32]
Sensor = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class Normalisation(BaseModel):
    """Per-sensor mean and spread of normal windows; the edge scales live windows by the same."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sensors: tuple[Sensor, ...] = Field(min_length=1, max_length=64)
    mean: tuple[float, ...]
    std: tuple[Annotated[float, Field(gt=0)], ...]

    @model_validator(mode="after")
    def _one_figure_per_sensor(self) -> Self:
        if not len(self.sensors) == len(self.mean) == len(self.std):
            raise ValueError("mean and std need one figure per sensor")
        return self

    @classmethod
    def fit(cls, normal: Array, sensors: tuple[str, ...]) -> Normalisation:
        flat = normal.reshape(-1, normal.shape[-1])
        std = np.maximum(flat.std(axis=0), 1e-6)
        return cls(
            sensors=sensors, mean=tuple(float(m) for m in flat.mean(axis=0)), std=tuple(float(s) for s in std)
        )

    def apply(self, x: Array) -> Array:
        return ((x - np.array(self.mean, np.float32)) / np.array(self.std, np.float32)).astype(np.float32)


class SensorModel(BaseModel):
    """How a version turns readings into windows, and windows into an alert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    normalisation: Normalisation
    window: int = Field(ge=2, le=10_000)
    """Readings per window, of every sensor."""
    stride: int = Field(default=10, ge=1, le=10_000)
    """A window ends every ``stride`` readings: the windows evaluation judged, so K of N means the same."""
    threshold: float = Field(gt=0)
    """Reconstruction error (mean squared, on scaled readings) above which a window is anomalous."""
    alert_k: int = Field(default=3, ge=1)
    alert_n: int = Field(default=5, ge=1, le=1000)
    """An alert is raised when ``alert_k`` of a machine's last ``alert_n`` windows are anomalous."""

    @model_validator(mode="after")
    def _k_of_n(self) -> Self:
        if self.alert_k > self.alert_n:
            raise ValueError(f"alert_k {self.alert_k} exceeds alert_n {self.alert_n}")
        return self

    @property
    def sensors(self) -> tuple[str, ...]:
        return self.normalisation.sensors

    def check(self, windows: Array) -> Array:
        """``windows`` as float32 ``(n, window, sensors)``, or :class:`InvalidInput` saying what is off."""
        x = np.asarray(windows, dtype=np.float32)
        expected = (self.window, len(self.sensors))
        if x.ndim != 3 or x.shape[1:] != expected:
            raise InvalidInput(f"windows of shape {x.shape}: expected (n, {expected[0]}, {expected[1]})")
        if not np.isfinite(x).all():
            raise InvalidInput("windows hold a missing or infinite reading: fill gaps before scoring")
        return x

    def save(self, folder: Path) -> None:
        (folder / SENSOR_MODEL_FILE).write_text(self.model_dump_json(indent=2))

    @classmethod
    def load(cls, folder: Path) -> SensorModel:
        path = folder / SENSOR_MODEL_FILE
        try:
            return cls.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            raise IntegrityError(f"{path} is not a sensor model description: {exc}") from exc
