"""What a sensor (anomaly) model version ships beside its LiteRT file: read by training and the edge alike.

The edge must turn live readings into exactly the windows training saw: the same
sensors in the same order, the same window length, scaled by the statistics of the
normal windows the autoencoder learnt.  It must also judge them the same way: the
reconstruction-error threshold evaluation chose, and how many of the last windows must
pass it before an alert is raised (one noisy window is not a failing machine).  All of
it lives in one file, ``sensor_model.json``, so the pair cannot drift apart.
"""

from __future__ import annotations

import warnings
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


def texture_features(raw: Array) -> Array:
    """Per window and sensor, its median level and the log of its median step between readings.

    ``raw``: ``(n, window, sensors)`` readings as they arrived, NaN where one was missing (the
    gaps are not filled: a filled gap would look like a sensor that stopped moving).  Medians,
    not spreads, so one jump (a machine starting) does not look like a rough signal; a stuck
    sensor's step is 0, a pulsation that speeds up takes larger steps.  NaN where a sensor has
    fewer than 5 steps in the window.
    """
    x = np.asarray(raw, dtype=np.float64)
    steps = np.abs(np.diff(x, axis=1))
    enough = (~np.isnan(steps)).sum(axis=1) >= 5
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, masked below
        level = np.nanmedian(x, axis=1)
        step = np.log(np.nanmedian(steps, axis=1) + 1e-3)
    return np.concatenate([np.where(enough, level, np.nan), np.where(enough, step, np.nan)], axis=1).astype(
        np.float32
    )


MAX_KEPT = 1500
"""Dismissed windows the texture reference keeps beside the sample of normal ones."""


class Texture(BaseModel):
    """How far a window's texture (:func:`texture_features`) lies from the normal windows training saw:
    the distance to its ``k``-th nearest normal window, in features scaled by ``center`` and ``spread``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    center: tuple[float, ...]
    spread: tuple[Annotated[float, Field(gt=0)], ...]
    reference: list[tuple[float, ...]] = Field(min_length=1, max_length=5000)
    """Scaled features of normal windows (a sample of them)."""
    k: int = Field(default=5, ge=1)
    threshold: float = Field(gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        width = len(self.center)
        if len(self.spread) != width or any(len(r) != width for r in self.reference):
            raise ValueError("center, spread and every reference row need one figure per feature")
        if self.k > len(self.reference):
            raise ValueError(f"k {self.k} exceeds the {len(self.reference)} reference windows")
        return self

    @classmethod
    def fit(
        cls,
        features: Array,
        k: int = 5,
        max_reference: int = 3000,
        seed: int = 0,
        kept: Array | None = None,
    ) -> Texture:
        """Scaling and reference from normal windows' features (then :meth:`with_threshold`).

        ``kept``: features of windows staff called normal (dismissed alarms), up to
        ``MAX_KEPT`` of them, all in the reference: rare behaviour a sample would leave out.
        """
        usable = features[~np.isnan(features).any(axis=1)]
        center, spread = usable.mean(axis=0), usable.std(axis=0) + 1e-6
        rng = np.random.default_rng(seed)
        chosen = usable[np.sort(rng.choice(len(usable), min(max_reference, len(usable)), replace=False))]
        kept = kept[~np.isnan(kept).any(axis=1)] if kept is not None else usable[:0]
        if len(kept):
            picked = rng.choice(len(kept), min(MAX_KEPT, len(kept)), replace=False)
            chosen = np.concatenate([chosen, kept[np.sort(picked)]])
        scaled = (chosen - center) / spread
        return cls(
            center=tuple(float(c) for c in center),
            spread=tuple(float(s) for s in spread),
            reference=[tuple(float(v) for v in row) for row in scaled],
            k=k,
            threshold=1.0,
        )

    def with_threshold(self, threshold: float) -> Texture:
        return self.model_copy(update={"threshold": max(float(threshold), 1e-6)})

    def distances(self, features: Array, chunk: int = 128) -> npt.NDArray[np.float64]:
        """Each window's distance to its ``k``-th nearest reference window (a missing feature counts as
        the normal center)."""
        scaled = (np.asarray(features, np.float64) - np.array(self.center)) / np.array(self.spread)
        scaled = np.nan_to_num(scaled, nan=0.0)
        reference = np.asarray(self.reference, np.float64)
        norms = (reference**2).sum(axis=1)
        out = np.empty(len(scaled), np.float64)
        for start in range(0, len(scaled), chunk):
            part = scaled[start : start + chunk]
            squared = (part**2).sum(axis=1)[:, None] - 2.0 * part @ reference.T + norms[None, :]
            kth = np.partition(squared, self.k - 1, axis=1)[:, self.k - 1]
            out[start : start + len(part)] = np.sqrt(np.maximum(kth, 0.0))
        return out


ALERT_K, ALERT_N = 3, 5
"""The edge's alarm by default: ``ALERT_K`` of a machine's last ``ALERT_N`` windows anomalous."""


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
    texture: Texture | None = None
    """Where set, a window whose texture is too far from normal is anomalous too (a stuck sensor, a
    pulsation that speeds up: what an autoencoder of readings does not see)."""
    alert_k: int = Field(default=ALERT_K, ge=1)
    alert_n: int = Field(default=ALERT_N, ge=1, le=1000)
    """An alert is raised when ``alert_k`` of a machine's last ``alert_n`` windows are anomalous."""

    @model_validator(mode="after")
    def _k_of_n(self) -> Self:
        if self.alert_k > self.alert_n:
            raise ValueError(f"alert_k {self.alert_k} exceeds alert_n {self.alert_n}")
        return self

    @property
    def sensors(self) -> tuple[str, ...]:
        return self.normalisation.sensors

    def check(self, windows: Array, gaps: bool = False) -> Array:
        """``windows`` as float32 ``(n, window, sensors)``, or :class:`InvalidInput` saying what is off
        (``gaps``: a missing reading, NaN, is allowed; an infinite one never is)."""
        x = np.asarray(windows, dtype=np.float32)
        expected = (self.window, len(self.sensors))
        if x.ndim != 3 or x.shape[1:] != expected:
            raise InvalidInput(f"windows of shape {x.shape}: expected (n, {expected[0]}, {expected[1]})")
        if not (np.isfinite(x) | (gaps & np.isnan(x))).all():
            raise InvalidInput("windows hold a missing or infinite reading: fill gaps before scoring")
        return x

    def flags(
        self, errors: npt.NDArray[np.float64], distances: npt.NDArray[np.float64] | None
    ) -> npt.NDArray[np.bool_]:
        """Which windows are anomalous: over the error threshold, or (with texture) over its own.
        Evaluation, the gate and the edge all decide here, so they agree."""
        flags = (errors > self.threshold) | ~np.isfinite(errors)  # a score that overflowed is no "normal"
        if self.texture is not None and distances is not None:
            flags |= (distances > self.texture.threshold) | ~np.isfinite(distances)
        return np.asarray(flags, dtype=np.bool_)

    def save(self, folder: Path) -> None:
        (folder / SENSOR_MODEL_FILE).write_text(self.model_dump_json(indent=2))

    @classmethod
    def load(cls, folder: Path) -> SensorModel:
        path = folder / SENSOR_MODEL_FILE
        try:
            return cls.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            raise IntegrityError(f"{path} is not a sensor model description: {exc}") from exc
