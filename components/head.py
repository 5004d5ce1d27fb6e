"""The model's output layer: a cosine classifier.

A dense softmax can grow any logit by growing the features, so a photo far from every
product it knows may still get a confident answer.  Here each product is a direction in
feature space, and a photo's logits are its cosine similarity to each direction, times a
fixed scale: confidence needs the photo's features to point the way a product's do,
which is what makes "unsure" mean "unlike anything I know" (``foundation.openset``).

Keras is imported only when the layer is first needed (steps that never touch a model
must not pay TensorFlow's import); :func:`cosine_softmax` also registers the layer, so
call it before loading a saved model.  :func:`serving_model` is what is exported: the
probabilities and, beside them, each photo's largest cosine, which the unsure flag is
judged on.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from components.ensemble import members
from foundation.openset import COSINE, PROBABILITIES

OUTPUT_LAYER = "probabilities"
"""The cosine layer's name in every saved model (warm starts find it by it)."""
SCALE = 16.0
"""Cosines in [-1, 1] times this: a softmax that can still reach near-certainty."""


@cache
def cosine_softmax() -> Any:
    """The layer class ``CosineSoftmax(classes)``: softmax(scale · cos(features, w_k)) over products k."""
    import keras
    from keras import layers, ops

    @keras.saving.register_keras_serializable(package="edgecore")
    class CosineSoftmax(layers.Layer):  # type: ignore[misc]
        def __init__(self, classes: int, scale: float = SCALE, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.classes = classes
            self.scale = scale

        def build(self, input_shape: Any) -> None:
            self.kernel = self.add_weight(
                shape=(int(input_shape[-1]), self.classes), initializer="glorot_uniform", name="kernel"
            )

        def cosines(self, features: Any) -> Any:
            unit = features / ops.sqrt(ops.sum(features * features, axis=-1, keepdims=True) + 1e-12)
            norms = ops.sqrt(ops.sum(self.kernel * self.kernel, axis=0, keepdims=True) + 1e-12)
            return ops.matmul(unit, self.kernel / norms)

        def call(self, features: Any) -> Any:
            return ops.softmax(self.scale * self.cosines(features))

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "classes": self.classes, "scale": self.scale}

    return CosineSoftmax


def serving_model(model: Any) -> Any:
    """``model`` with two named outputs: its probabilities, and each photo's largest cosine to a
    product's direction (computed by the same layer, with the same weights, from the same features;
    for an ensemble, the mean over its members, as its probabilities are).
    A model without the cosine layer (a plain softmax someone exports) is returned as it is."""
    import keras
    from keras import layers, ops

    networks = members(model)
    heads = [next((la for la in m.layers if la.name == OUTPUT_LAYER), None) for m in networks]
    if any(head is None or not hasattr(head, "cosines") for head in heads) or COSINE in model.output_names:
        return model

    class LargestCosine(layers.Layer):  # type: ignore[misc]
        def __init__(self, head: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.head = head

        def call(self, features: Any) -> Any:
            return ops.max(self.head.cosines(features), axis=-1)

    def features(member: Any, head: Any) -> Any:  # a member's features, from the model's own input
        return head.input if member is model else keras.Model(member.inputs, head.input)(model.inputs[0])

    largest = [LargestCosine(head)(features(m, head)) for m, head in zip(networks, heads, strict=True)]
    cosine = largest[0] if len(largest) == 1 else layers.Average()(largest)
    named = layers.Identity(name=COSINE)(cosine)
    return keras.Model(model.inputs, {PROBABILITIES: model.output, COSINE: named}, name=model.name)
