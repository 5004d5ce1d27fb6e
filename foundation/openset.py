"""Knowing what a model does not know: calibrated confidence and the flag for unseen products.

A softmax always picks one of the products it was trained on, confidently or not, so a
photo of a product the store has just started selling would be answered as one it
knows.  Every model version therefore ships, beside its weights, what training learnt
on held-out photos (``openset.json``):

* a temperature that makes its top-1 probability mean what it says (fitted on the
  validation photos by minimising their negative log-likelihood);
* the centre of each product's image features (the network's last pooled layer, unit
  length) and the lowest similarity to its centre a known product's photo shows;
* the lowest calibrated confidence a known product's photo shows.

A photo is flagged unsure (a hard example, captured for the next round) when its
calibrated confidence or its features' similarity to the predicted product's centre
falls below those, which flags about ``flag_rate`` of known-product photos.  Training,
evaluation and serving all decide through :func:`decide`, so they agree.

The model's output is one vector per photo: the probabilities of its products, then
its features; a version exported before features were shipped has probabilities only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foundation.errors import IntegrityError

OPENSET_FILE = "openset.json"
Array = npt.NDArray[np.float32]
_TEMPERATURES = np.exp(np.linspace(np.log(0.3), np.log(8.0), 80)).astype(np.float32)


class OpenSet(BaseModel):
    """What serving needs to calibrate confidence and flag unseen products."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(gt=0)
    centroids: list[list[float]] = Field(min_length=1)
    """One unit vector per product, in label order."""
    min_similarity: float = Field(ge=-1.0, le=1.0)
    min_confidence: float = Field(ge=0.0, le=1.0)
    flag_rate: float = Field(ge=0.0, le=1.0)
    """The share of held-out known-product photos these thresholds flag."""

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
    """Per photo: (calibrated) probabilities, the predicted product, its confidence and similarity,
    and whether the photo shows a product the model knows."""

    probabilities: Array
    index: npt.NDArray[np.intp]
    confidence: Array
    similarity: Array | None
    recognized: npt.NDArray[np.bool_]


def split_outputs(outputs: Array, classes: int) -> tuple[Array, Array | None]:
    """(probabilities, unit-length features or None) from a model's output rows."""
    probabilities = outputs[:, :classes]
    if outputs.shape[1] == classes:
        return probabilities, None
    features = outputs[:, classes:]
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return probabilities, features / np.maximum(norms, 1e-12)


def calibrated(probabilities: Array, temperature: float) -> Array:
    """Probabilities as if the logits were divided by ``temperature`` (softmax of log p / T)."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / np.float32(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)


def decide(outputs: Array, classes: int, openset: OpenSet | None, min_confidence: float) -> Decision:
    """The answer for each photo: with a calibration, its rule; without one, ``min_confidence`` alone."""
    probabilities, features = split_outputs(outputs, classes)
    if openset is None:
        index = probabilities.argmax(axis=1)
        confidence = probabilities[np.arange(len(index)), index]
        return Decision(probabilities, index, confidence, None, confidence > min_confidence)
    probabilities = calibrated(probabilities, openset.temperature)
    index = probabilities.argmax(axis=1)
    confidence = probabilities[np.arange(len(index)), index]
    if features is None:
        return Decision(probabilities, index, confidence, None, confidence >= openset.min_confidence)
    centroids = np.asarray(openset.centroids, dtype=np.float32)
    similarity = np.einsum("ij,ij->i", features, centroids[index]).astype(np.float32)
    recognized = (confidence >= openset.min_confidence) & (similarity >= openset.min_similarity)
    return Decision(probabilities, index, confidence, similarity, recognized)


def fit(
    train: tuple[Array, npt.NDArray[np.int32]],
    held_out: tuple[Array, npt.NDArray[np.int32]],
    classes: int,
    flag_rate: float = 0.01,
) -> OpenSet:
    """The calibration from the training photos' outputs (centres) and held-out ones (the rest)."""
    _, train_features = split_outputs(train[0], classes)
    probabilities, features = split_outputs(held_out[0], classes)
    if train_features is None or features is None:
        raise IntegrityError("the model has no feature output: nothing to fit an open-set calibration on")
    centroids = _centroids(train_features, train[1], classes)
    temperature = _temperature(probabilities, held_out[1])
    scaled = calibrated(probabilities, temperature)
    index = scaled.argmax(axis=1)
    similarity = np.einsum("ij,ij->i", features, centroids[index])
    confidence = scaled[np.arange(len(index)), index]
    # Each rule takes half the budget: together they flag about flag_rate of known photos.
    return OpenSet(
        temperature=float(temperature),
        centroids=centroids.round(6).tolist(),
        min_similarity=float(np.quantile(similarity, flag_rate / 2)),
        min_confidence=float(np.quantile(confidence, flag_rate / 2)),
        flag_rate=flag_rate,
    )


def _centroids(features: Array, labels: npt.NDArray[np.int32], classes: int) -> Array:
    centres = np.zeros((classes, features.shape[1]), dtype=np.float32)
    for c in range(classes):
        members = features[labels == c]
        if len(members):
            mean = members.mean(axis=0)
            centres[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return centres


def _temperature(probabilities: Array, labels: npt.NDArray[np.int32]) -> float:
    """The temperature with the lowest negative log-likelihood of the true products."""
    rows = np.arange(len(labels))
    losses = [
        -np.log(np.clip(calibrated(probabilities, t)[rows, labels], 1e-12, 1.0)).mean() for t in _TEMPERATURES
    ]
    return float(_TEMPERATURES[int(np.argmin(losses))])
