"""An ensemble: product models trained apart, from different seeds, whose answers are averaged.

One small network's features place some photos of products it never saw among those it
knows, and which photos depends on its seed; two networks seldom agree on the same
wrong ones.  Averaging their probabilities, and their largest cosines
(``components.head.serving_model``), flags far more photos of unseen products at the same
share of known ones flagged (docs/performance.md), for twice the training and inference
of one.  The saved ``model.keras`` nests each member as a model of its own, so a warm
start finds every member again.
"""

from __future__ import annotations

from typing import Any

MEMBER_PREFIX = "member_"
AVERAGE_LAYER = "ensemble"


def combine(members: list[Any]) -> Any:
    """One model answering the mean of ``members``' probabilities (a lone member as it is)."""
    if len(members) == 1:
        return members[0]
    import keras
    from keras import layers

    inputs = keras.Input(tuple(members[0].inputs[0].shape[1:]), name="image")
    outputs = [
        keras.Model(member.inputs, member.output, name=f"{MEMBER_PREFIX}{k}")(inputs)
        for k, member in enumerate(members)
    ]
    return keras.Model(inputs, layers.Average(name=AVERAGE_LAYER)(outputs), name="edgecore_ensemble")


def members(model: Any) -> list[Any]:
    """The members of a model :func:`combine` made; a single model is its own one member."""
    nested = [layer for layer in model.layers if layer.name.startswith(MEMBER_PREFIX)]
    return nested or [model]
