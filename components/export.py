"""export: one model version folder, in the format the edge and KServe load.

``model.tflite``  LiteRT flatbuffer, float32 input ``[1, S, S, 3]`` in [0, 1], softmax output
``saved_model/``  TensorFlow SavedModel (``serving_default``) for KServe's TensorFlow runtime
``model.keras``   the Keras model, so the next round can warm-start from it
``labels.json``   the SKUs in output order;  ``catalogue.json``  names, prices, promotions
``model_card.md`` what it is, what it was trained on, how good it is
``manifest.json`` every file's sha256 and size, labels, metrics, metadata: written LAST

The LiteRT file is checked against the Keras model on real inputs before anything is
written as done: a converter surprise must not reach a kiosk.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from components.train import KERAS_FILE, configure_tensorflow
from edgecore.catalogue import Catalogue
from edgecore.errors import IntegrityError
from edgecore.layout import (
    CATALOGUE_FILE,
    LABELS_FILE,
    MANIFEST,
    MODEL_CARD_FILE,
    SAVED_MODEL_DIR,
    TFLITE_FILE,
    edge_model_name,
)
from edgecore.manifest import Manifest, entries_for_dir

UNPUBLISHED = "unpublished"
"""The manifest version of an export; publish replaces it with the registry version."""
PARITY_TOLERANCE = 1e-4


def to_tflite(saved_model: Path) -> bytes:
    tf = configure_tensorflow(1)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    return bytes(converter.convert())


def check_parity(tflite: Path, model: Any, samples: npt.NDArray[np.float32]) -> float:
    """Largest probability difference between LiteRT and Keras on ``samples``."""
    from components.evaluate import litert_predict

    expected = np.asarray(model.predict(samples, verbose=0))
    actual = litert_predict(tflite, samples)
    diff = float(np.max(np.abs(expected - actual))) if len(samples) else 0.0
    if diff > PARITY_TOLERANCE:
        raise IntegrityError(f"{tflite}: LiteRT output differs from Keras by {diff:.2e}")
    return diff


def model_card(
    edge: str, labels: list[str], catalogue: Catalogue, metrics: dict[str, float], metadata: dict[str, Any]
) -> str:
    names = {p.sku: p.name for p in catalogue.products}
    lines = [
        f"# {edge_model_name(edge)}",
        "",
        f"Recognises the {len(labels)} products of edge `{edge}` from a kiosk photo.",
        "",
        "- Input: one RGB photo, preprocessed by `edgecore.preprocessing.preprocess` "
        f"to float32 `[1, {metadata.get('image_size')}, {metadata.get('image_size')}, 3]` in [0, 1].",
        "- Output: softmax probabilities in the order of `labels.json`.",
        f"- Trained on: {', '.join(metadata.get('datasets', [])) or 'unknown'}.",
        f"- Test accuracy: {metrics.get('accuracy', float('nan')):.1%} "
        f"on {int(metrics.get('test_images', 0))} photos.",
        "- Intended use: product recognition in this store's own catalogue; "
        "anything else is out of distribution and should fall below the confidence threshold.",
        "",
        "| SKU | product | recall |",
        "|---|---|---:|",
    ]
    lines += [
        f"| {s} | {names.get(s, '')} | {metrics.get(f'recall.{s}', float('nan')):.1%} |" for s in labels
    ]
    return "\n".join(lines) + "\n"


def export_model(
    model: Any,
    labels: list[str],
    catalogue: Catalogue,
    out: Path,
    image_size: int,
    metrics: dict[str, float] | None = None,
    metadata: dict[str, Any] | None = None,
    parity_samples: npt.NDArray[np.float32] | None = None,
) -> Manifest:
    """Write the version folder for an in-memory Keras model; return its manifest."""
    configure_tensorflow(1)
    metrics = dict(metrics or {})
    metadata = {**(metadata or {}), "image_size": image_size, "edge": catalogue.edge}
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model.export(str(out / SAVED_MODEL_DIR), format="tf_saved_model", verbose=False)
    (out / TFLITE_FILE).write_bytes(to_tflite(out / SAVED_MODEL_DIR))
    samples = (
        parity_samples
        if parity_samples is not None
        else np.random.default_rng(0).random((4, image_size, image_size, 3), dtype=np.float32)
    )
    metadata["litert_max_abs_diff"] = check_parity(out / TFLITE_FILE, model, samples[:32])
    model.save(out / KERAS_FILE)
    (out / LABELS_FILE).write_text(json.dumps(labels))
    (out / CATALOGUE_FILE).write_bytes(catalogue.to_bytes())
    (out / MODEL_CARD_FILE).write_text(model_card(catalogue.edge, labels, catalogue, metrics, metadata))
    manifest = Manifest(
        kind="model",
        name=edge_model_name(catalogue.edge),
        version=UNPUBLISHED,
        files=entries_for_dir(out),
        labels=labels,
        metrics=metrics,
        metadata=metadata,
    )
    (out / MANIFEST).write_bytes(manifest.to_bytes())
    return manifest


def export_trained(
    model_dir: Path,
    prepared: Path,
    out: Path,
    image_size: int,
    metrics: dict[str, float],
    metadata: dict[str, Any],
) -> Manifest:
    """The pipeline's export: the trained Keras file plus the prepared labels and catalogue."""
    configure_tensorflow(1)
    import keras

    from components.prepare import PreparedData

    data = PreparedData(prepared)
    model = keras.models.load_model(model_dir / KERAS_FILE, compile=False)
    return export_model(
        model, data.labels, data.catalogue, out, image_size, metrics, metadata, data.split("test").x
    )
