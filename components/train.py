"""train: a small Keras CNN for CPU edge inference, fed by a tf.data pipeline.

The network is depthwise-separable convolutions on a 64×64 input (a few tens of
thousands of parameters, well under a millisecond per image on one CPU core with
LiteRT); two of them, trained apart from different seeds, answer together
(``components.ensemble``).  The input pipeline caches the decoded arrays, shuffles, augments whole
batches with one vectorised affine warp plus lighting jitter, and prefetches, so the
model never waits for data.  Seeds are fixed; the edge's current production model
(each of its networks) seeds the weights when its labels are a subset of the new ones (a new product only
adds an output column, it does not restart learning).  With TensorFlow loaded here, the
step also writes the SavedModel and LiteRT files (``components.artefacts``), so the
evaluate and export steps never import it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from components.artefacts import (
    KERAS_FILE,
    configure_tensorflow,
    keras_predict,
    load_keras_model,
    write_serving_files,
)
from components.ensemble import combine, members
from components.head import OUTPUT_LAYER, cosine_softmax, serving_model
from components.outliers import with_outliers
from components.prepare import PreparedData, Split
from foundation.errors import InvalidInput
from foundation.layout import LABELS_FILE
from foundation.openset import OPENSET_FILE, fit

log = logging.getLogger(__name__)

HISTORY_FILE = "history.json"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 3e-3
    fine_tune_learning_rate: float = 1e-3
    """When warm-started: at the cold-start rate a new product made the model unlearn old
    ones (the gate stopped such runs); a lower rate keeps what it knew."""
    patience: int = 10
    """Epochs without a better validation loss before training stops (the best weights are kept)."""
    plateau_patience: int = 3
    """Epochs without a better validation loss before the learning rate is halved."""
    seed: int = 0
    threads: int = 1
    augment: bool = True
    outlier_weight: float = 0.5
    """Weight of the made-up outliers' loss (``components.outliers``); 0 trains without them."""
    members: int = 2
    """Networks trained apart (seeds ``seed``, ``seed + 1``, …) and averaged (``components.ensemble``)."""

    def __post_init__(self) -> None:
        if self.members < 1:
            raise InvalidInput(f"an ensemble needs at least one network, not {self.members}")


@dataclass(frozen=True)
class TrainResult:
    epochs_run: int
    """The longest any member ran."""
    best_val_accuracy: float
    warm_started_from: str | None
    seconds: float
    images_per_second: float
    litert_max_abs_diff: float


def build_model(num_classes: int, image_size: int) -> Any:
    import keras
    from keras import layers

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Conv2D(24, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    for filters in (48, 96, 128):
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
        if filters != 128:
            x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D(name="features")(x)
    x = layers.Dropout(0.2)(x)
    outputs = cosine_softmax()(num_classes, name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, outputs, name="edgecore_products")


def augment_batch(tf: Any, x: Any) -> Any:
    """Per-image random zoom, shift and lighting for a whole batch in a few kernel calls."""
    n = tf.shape(x)[0]
    size = tf.cast(tf.shape(x)[1], tf.float32)
    scale = tf.random.uniform([n], 0.85, 1.15)
    shift = tf.random.uniform([n, 2], -0.1, 0.1) * size
    centre = size / 2.0
    inv = 1.0 / scale
    zeros = tf.zeros([n])
    transforms = tf.stack(
        [
            inv,
            zeros,
            centre - centre * inv + shift[:, 0],
            zeros,
            inv,
            centre - centre * inv + shift[:, 1],
            zeros,
            zeros,
        ],
        axis=1,
    )
    x = tf.raw_ops.ImageProjectiveTransformV3(
        images=x,
        transforms=transforms,
        output_shape=tf.shape(x)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
    gain = tf.random.uniform([n, 1, 1, 1], 0.7, 1.3) * tf.random.uniform([n, 1, 1, 3], 0.9, 1.1)
    offset = tf.random.uniform([n, 1, 1, 1], -0.08, 0.08)
    return tf.clip_by_value(x * gain + offset, 0.0, 1.0)


def make_dataset(
    tf: Any,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int32],
    config: TrainConfig,
    training: bool,
    classes: int,
) -> Any:
    """Batches of (images, one-hot targets[, sample weights]); training batches augmented and,
    with ``outlier_weight``, joined by outliers to be unsure of."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if training:
        ds = ds.shuffle(len(x), seed=config.seed, reshuffle_each_iteration=True)
    ds = ds.batch(config.batch_size)
    if training and config.augment:
        ds = ds.map(lambda a, b: (augment_batch(tf, a), b), num_parallel_calls=tf.data.AUTOTUNE)
    if training and config.outlier_weight > 0:
        ds = ds.map(
            lambda a, b: with_outliers(tf, a, b, classes, config.outlier_weight),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        ds = ds.map(lambda a, b: (a, tf.one_hot(b, classes)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def warm_start(model: Any, production: Path, labels: list[str], member: int = 0) -> bool:
    """Copy the weights of the production model's ``member`` (of its only network, if it is not
    an ensemble) when its labels are a subset of ``labels``.

    Every layer but the output is copied as is; the output layer's columns are copied
    to the positions of the same SKUs, new SKUs keep their fresh initialisation.
    """
    keras_file = production / KERAS_FILE
    labels_file = production / LABELS_FILE
    if not keras_file.is_file() or not labels_file.is_file():
        return False
    old_labels = list(json.loads(labels_file.read_text()))
    if not set(old_labels) <= set(labels):
        log.info("no warm start: production labels %s are not a subset of %s", old_labels, labels)
        return False
    networks = members(load_keras_model(keras_file))
    old = networks[member % len(networks)]
    if [type(layer).__name__ for layer in old.layers] != [type(layer).__name__ for layer in model.layers]:
        log.info("no warm start: the production model has another architecture")
        return False
    for old_layer, new_layer in zip(old.layers, model.layers, strict=True):
        old_weights = old_layer.get_weights()
        if new_layer.name == OUTPUT_LAYER:  # one column per product (a kernel, and a bias if any)
            columns = [labels.index(sku) for sku in old_labels]
            fresh = [w.copy() for w in new_layer.get_weights()]
            for new_w, old_w in zip(fresh, old_weights, strict=True):
                new_w[..., columns] = old_w
            new_layer.set_weights(fresh)
        elif [w.shape for w in old_weights] == [w.shape for w in new_layer.get_weights()]:
            new_layer.set_weights(old_weights)
        else:
            log.info("no warm start: layer %s changed shape", new_layer.name)
            return False
    return True


def reproducible(tf: Any, seed: int) -> None:
    """Same data, same seed, same model.

    Seeds alone are not enough: the augmentation's random ops run in a parallel
    ``Dataset.map``, whose scheduling changed which run drew which numbers (different
    epochs and weights from the same prepared data), and so which versions passed the
    gate and the edges' probe checks.
    """
    import keras

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@dataclass(frozen=True)
class _Fitted:
    model: Any
    history: dict[str, list[float]]
    warm: bool


def _fit_member(
    tf: Any,
    splits: tuple[Split, Split],
    labels: list[str],
    config: TrainConfig,
    production: Path | None,
    member: int,
) -> _Fitted:
    """One network of the ensemble, from its own seed (warm-started from the same member);
    ``splits``: (train, val), loaded once for every member."""
    import keras

    reproducible(tf, config.seed + member)
    train_split, val_split = splits
    model = build_model(len(labels), int(train_split.x.shape[1]))
    warm = production is not None and warm_start(model, production, labels, member)
    model.compile(
        optimizer=keras.optimizers.Adam(config.fine_tune_learning_rate if warm else config.learning_rate),
        loss="categorical_crossentropy",
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=config.plateau_patience, min_lr=1e-5
        ),
    ]
    history = model.fit(
        make_dataset(tf, train_split.x, train_split.y, config, True, len(labels)),
        validation_data=make_dataset(tf, val_split.x, val_split.y, config, False, len(labels)),
        epochs=config.epochs,
        callbacks=callbacks,
        shuffle=False,  # the dataset reshuffles itself every epoch
        verbose=0,
    )
    return _Fitted(model, {k: [float(v) for v in vs] for k, vs in history.history.items()}, warm)


def train(prepared: Path, out: Path, config: TrainConfig, production: Path | None = None) -> TrainResult:
    """Fit the ensemble's networks on the prepared splits; save ``out/model.keras`` and its
    serving files."""
    tf = configure_tensorflow(config.threads)
    data = PreparedData(prepared)
    labels, train_split, val_split = data.labels, data.split("train"), data.split("val")
    started = time.perf_counter()
    splits = train_split, val_split
    fitted = [_fit_member(tf, splits, labels, config, production, k) for k in range(config.members)]
    seconds = time.perf_counter() - started
    epochs = [len(f.history["loss"]) for f in fitted]
    model = combine([f.model for f in fitted])
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / KERAS_FILE)
    serving = serving_model(model)
    parity = write_serving_files(serving, out, val_split.x)
    (out / LABELS_FILE).write_text(json.dumps(labels))
    val_outputs = keras_predict(serving, val_split.x)
    (out / OPENSET_FILE).write_bytes(fit(val_outputs, val_split.y).to_bytes())
    warm = all(f.warm for f in fitted)
    result = TrainResult(
        epochs_run=max(epochs),
        best_val_accuracy=float((val_outputs.probabilities.argmax(axis=1) == val_split.y).mean()),
        warm_started_from=str(production) if warm else None,
        seconds=seconds,
        images_per_second=sum(epochs) * len(train_split.y) / seconds,
        litert_max_abs_diff=parity,
    )
    (out / HISTORY_FILE).write_text(json.dumps({"members": [f.history for f in fitted], **asdict(result)}))
    return result
