"""Knowing what a model does not know: calibrated confidence and the flag for unseen products.

A softmax always names one of the products it was trained on, so a photo of a product
the store has just started selling would be answered as one it knows.  Training makes
the answer mean something (a cosine classifier taught to be unsure of made-up outliers,
``components.outliers``), and every model version ships what training then learnt on
held-out photos (``openset.json``):

* a temperature that makes its top-1 probability mean what it says (fitted on the
  held-out photos by minimising their negative log-likelihood);
* the lowest calibrated confidence that all but ``flag_rate`` of the held-out photos of
  products it knows reach.

A photo under that confidence is flagged unsure (``recognized: false``), and captured
as a hard example for the next round.  Training, evaluation and serving all decide
through :func:`decide`, so they agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foundation.errors import IntegrityError

OPENSET_FILE = "openset.json"
DEFAULT_FLAG_RATE = 0.01
Array = npt.NDArray[np.float32]
_TEMPERATURES = np.exp(np.linspace(np.log(0.3), np.log(8.0), 80)).astype(np.float32)


class OpenSet(BaseModel):
    """What serving needs to calibrate confidence and flag unseen products."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(gt=0)
    min_confidence: float = Field(ge=0.0, le=1.0)
    flag_rate: float = Field(ge=0.0, le=1.0)
    """The share of held-out known-product photos the threshold flags."""

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> OpenSet:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise IntegrityError(f"{where}: not an open-set calibration: {exc.errors()[0]['msg']}") from exc


@dataclass(frozen=True)
class Decision:
    """Per photo: (calibrated) probabilities, the predicted product, its confidence, and whether
    the photo shows a product the model knows."""

    probabilities: Array
    index: npt.NDArray[np.intp]
    confidence: Array
    recognized: npt.NDArray[np.bool_]


def calibrated(probabilities: Array, temperature: float) -> Array:
    """Probabilities as if the logits were divided by ``temperature`` (softmax of log p / T)."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / np.float32(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)


def decide(probabilities: Array, openset: OpenSet | None, min_confidence: float) -> Decision:
    """The answer for each photo: with a calibration, its rule; without one (a version trained
    before calibrations were shipped), a top-1 probability above ``min_confidence``."""
    if openset is not None:
        probabilities = calibrated(probabilities, openset.temperature)
    index = probabilities.argmax(axis=1)
    confidence = probabilities[np.arange(len(index)), index]
    recognized = confidence >= openset.min_confidence if openset is not None else confidence > min_confidence
    return Decision(probabilities, index, confidence, recognized)


def fit(probabilities: Array, labels: npt.NDArray[np.int32], flag_rate: float = DEFAULT_FLAG_RATE) -> OpenSet:
    """The calibration from held-out photos of known products: their probabilities and true labels."""
    if len(labels) == 0:
        raise IntegrityError("no held-out photos to fit an open-set calibration on")
    temperature = _temperature(probabilities, labels)
    scaled = calibrated(probabilities, temperature)
    confidence = scaled.max(axis=1)
    return OpenSet(
        temperature=float(temperature),
        min_confidence=float(np.quantile(confidence, flag_rate)),
        flag_rate=flag_rate,
    )


def _temperature(probabilities: Array, labels: npt.NDArray[np.int32]) -> float:
    """The temperature with the lowest negative log-likelihood of the true products."""
    rows = np.arange(len(labels))
    losses = [
        -np.log(np.clip(calibrated(probabilities, t)[rows, labels], 1e-12, 1.0)).mean() for t in _TEMPERATURES
    ]
    return float(_TEMPERATURES[int(np.argmin(losses))])
