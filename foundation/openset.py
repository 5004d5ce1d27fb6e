"""Knowing what a model does not know: calibrated confidence and the flag for unseen products.

A softmax always names one of the products it was trained on, so a photo of a product
the store has just started selling would be answered as one it knows.  Training makes
the answer mean something (a cosine classifier taught to be unsure of made-up outliers,
``components.outliers``), and every model version ships what training then learnt on
held-out photos (``openset.json``):

* a temperature that makes its top-1 probability mean what it says (fitted on the
  held-out photos by minimising their negative log-likelihood);
* the lowest score that all but ``flag_rate`` of the held-out photos of products it knows
  reach.  The score is the photo's largest cosine to a product's direction where the
  model outputs it (``cosine`` beside ``probabilities``): on real photos of unseen
  products it flags markedly more of them than the calibrated top-1 probability does at
  the same rate on known ones (docs/performance.md), because a softmax hides how far a
  photo is from every product.  Versions exported before then are judged by their
  calibrated confidence.

A photo under its threshold is flagged unsure (``recognized: false``), and captured
as a hard example for the next round.  Training, evaluation and serving all decide
through :func:`decide`, so they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foundation.errors import IntegrityError

OPENSET_FILE = "openset.json"
PROBABILITIES = "probabilities"
COSINE = "cosine"
UNNAMED_OUTPUT = "output_0"
"""The names of the exported model's outputs (a version from before cosines has one, unnamed)."""
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
    min_cosine: float | None = Field(default=None, ge=-1.0, le=1.0)
    """The unsure threshold on the largest cosine; None where the model outputs no cosine."""

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> OpenSet:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise IntegrityError(f"{where}: not an open-set calibration: {exc.errors()[0]['msg']}") from exc


@dataclass(frozen=True)
class Outputs:
    """What a model answers for a batch: its probabilities, and each photo's largest cosine to a
    product's direction (None from a version exported without it)."""

    probabilities: Array
    cosine: Array | None = None


def output_names(names: list[str]) -> tuple[str, str | None]:
    """Which of an exported model's outputs are its probabilities and its cosine: named since
    cosines are shipped, the only output before."""
    if PROBABILITIES in names:
        return PROBABILITIES, COSINE if COSINE in names else None
    if len(names) == 1:
        return names[0], None
    raise IntegrityError(f"the model's outputs {sorted(names)} include no {PROBABILITIES!r}")


def as_outputs(named: dict[str, Array]) -> Outputs:
    """A product model's outputs, from all its outputs by name."""
    probabilities, cosine = output_names(list(named))
    return Outputs(named[probabilities], named[cosine].reshape(-1) if cosine else None)


def litert_output_indices(interpreter: Any) -> dict[str, int]:
    """A LiteRT interpreter's output tensors by the names its signature gives them (one converted
    without a signature: its one output, as ``output_0``)."""
    if not interpreter.get_signature_list():
        return {f"output_{i}": int(d["index"]) for i, d in enumerate(interpreter.get_output_details())}
    details = interpreter.get_signature_runner().get_output_details()
    return {name: int(detail["index"]) for name, detail in details.items()}


def litert_output_shape(interpreter: Any, index: int) -> tuple[int, ...]:
    """The shape of one image's output at tensor ``index``, from the output details: the tensor
    itself has no data before the first invoke where the batch dimension is dynamic."""
    detail = next(d for d in interpreter.get_output_details() if int(d["index"]) == index)
    return tuple(int(n) for n in detail["shape"][1:])


def litert_outputs(interpreter: Any) -> tuple[int, int | None]:
    """The tensor indices of a product model's probabilities and cosine (None if it has none)."""
    indices = litert_output_indices(interpreter)
    probabilities, cosine = output_names(list(indices))
    return indices[probabilities], indices[cosine] if cosine else None


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


def decide(outputs: Outputs, openset: OpenSet | None, min_confidence: float) -> Decision:
    """The answer for each photo: with a calibration, its rule (on the cosine where it ships a
    threshold for one); without one (a version trained before calibrations were shipped), a
    top-1 probability above ``min_confidence``."""
    probabilities = outputs.probabilities
    if openset is not None:
        probabilities = calibrated(probabilities, openset.temperature)
    index = probabilities.argmax(axis=1)
    confidence = probabilities[np.arange(len(index)), index]
    if openset is None:
        return Decision(probabilities, index, confidence, confidence > min_confidence)
    if openset.min_cosine is None:
        return Decision(probabilities, index, confidence, confidence >= openset.min_confidence)
    if outputs.cosine is None:
        raise IntegrityError("the version ships a cosine threshold but its model outputs no cosine")
    return Decision(probabilities, index, confidence, outputs.cosine >= openset.min_cosine)


def fit(outputs: Outputs, labels: npt.NDArray[np.int32], flag_rate: float = DEFAULT_FLAG_RATE) -> OpenSet:
    """The calibration from held-out photos of known products: the model's outputs and true labels."""
    if len(labels) == 0:
        raise IntegrityError("no held-out photos to fit an open-set calibration on")
    temperature = _temperature(outputs.probabilities, labels)
    confidence = calibrated(outputs.probabilities, temperature).max(axis=1)
    return OpenSet(
        temperature=float(temperature),
        min_confidence=float(np.quantile(confidence, flag_rate)),
        flag_rate=flag_rate,
        min_cosine=None if outputs.cosine is None else float(np.quantile(outputs.cosine, flag_rate)),
    )


def _temperature(probabilities: Array, labels: npt.NDArray[np.int32]) -> float:
    """The temperature with the lowest negative log-likelihood of the true products."""
    rows = np.arange(len(labels))
    losses = [
        -np.log(np.clip(calibrated(probabilities, t)[rows, labels], 1e-12, 1.0)).mean() for t in _TEMPERATURES
    ]
    return float(_TEMPERATURES[int(np.argmin(losses))])
