"""export: one model version folder, in the format the edge and KServe load.

``model.tflite``  LiteRT flatbuffer, float32 input ``[1, S, S, 3]`` in [0, 1]; outputs
                  ``probabilities`` and ``cosine`` (``components.head.serving_model``)
``saved_model/``  TensorFlow SavedModel (``serving_default``) for KServe's TensorFlow runtime
``model.keras``   the Keras model, so the next round can warm-start from it
``labels.json``   the SKUs in output order;  ``catalogue.json``  names, prices, promotions
``openset.json``  confidence calibration and the unsure threshold (``foundation.openset``)
``model_card.md`` what it is, what it was trained on, how good it is
``manifest.json`` every file's sha256 and size, labels, metrics, metadata: written LAST

The LiteRT file is checked against the Keras model on real inputs before anything is
written as done: a converter surprise must not reach a kiosk.  In the pipeline the train
step has already written and checked the TensorFlow files (``components.artefacts``), so
export copies them and never imports TensorFlow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from components.artefacts import (
    KERAS_FILE,
    configure_tensorflow,
    has_serving_files,
    load_keras_model,
    write_serving_files,
)
from components.head import serving_model
from components.train import HISTORY_FILE
from foundation.catalogue import Catalogue
from foundation.layout import (
    CATALOGUE_FILE,
    LABELS_FILE,
    MANIFEST,
    MODEL_CARD_FILE,
    SAVED_MODEL_DIR,
    TFLITE_FILE,
    edge_model_name,
)
from foundation.manifest import Manifest, entries_for_dir
from foundation.openset import OPENSET_FILE

UNPUBLISHED = "unpublished"
"""The manifest version of an export; publish replaces it with the registry version."""


def model_card(
    edge: str, labels: list[str], catalogue: Catalogue, metrics: dict[str, float], metadata: dict[str, Any]
) -> str:
    names = {p.sku: p.name for p in catalogue.products}
    lines = [
        f"# {edge_model_name(edge)}",
        "",
        f"Recognises the {len(labels)} products of edge `{edge}` from a kiosk photo.",
        "",
        "- Input: one RGB photo, preprocessed by `foundation.preprocessing.preprocess` "
        f"to float32 `[1, {metadata.get('image_size')}, {metadata.get('image_size')}, 3]` in [0, 1].",
        "- Outputs: `probabilities` (softmax, in the order of `labels.json`) and `cosine` (the photo's"
        " largest cosine to a product's direction), each the mean over the networks of an ensemble"
        " (`model.keras` nests them); `openset.json` calibrates the confidence and sets"
        " the cosine under which a photo is flagged unsure (possibly unseen).",
        f"- Trained on: {', '.join(metadata.get('datasets', [])) or 'unknown'}.",
        f"- Test accuracy: {metrics.get('accuracy', float('nan')):.1%} "
        f"on {int(metrics.get('test_images', 0))} photos.",
        "- Intended use: product recognition in this store's own catalogue; "
        "anything else is out of distribution and should be flagged unsure.",
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
    metadata = {**(metadata or {}), "image_size": image_size, "edge": catalogue.edge}
    _fresh(out)
    samples = (
        parity_samples
        if parity_samples is not None
        else np.random.default_rng(0).random((4, image_size, image_size, 3), dtype=np.float32)
    )
    metadata["litert_max_abs_diff"] = write_serving_files(serving_model(model), out, samples)
    model.save(out / KERAS_FILE)
    return _package(out, labels, catalogue, dict(metrics or {}), metadata)


def export_trained(
    model_dir: Path,
    prepared: Path,
    out: Path,
    image_size: int,
    metrics: dict[str, float],
    metadata: dict[str, Any],
) -> Manifest:
    """The pipeline's export: the train step's model files plus the prepared labels and catalogue."""
    from components.prepare import PreparedData

    data = PreparedData(prepared)
    if not has_serving_files(model_dir):  # a bare Keras file: convert and check it here
        configure_tensorflow(1)
        model = load_keras_model(model_dir / KERAS_FILE)
        return export_model(
            model, data.labels, data.catalogue, out, image_size, metrics, metadata, data.split("test").x
        )
    trained = json.loads((model_dir / HISTORY_FILE).read_text())
    metadata = {
        **metadata,
        "image_size": image_size,
        "edge": data.catalogue.edge,
        "litert_max_abs_diff": trained["litert_max_abs_diff"],
    }
    _fresh(out)
    for name in (KERAS_FILE, TFLITE_FILE, OPENSET_FILE):
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, out / name)
    shutil.copytree(model_dir / SAVED_MODEL_DIR, out / SAVED_MODEL_DIR)
    return _package(out, data.labels, data.catalogue, dict(metrics), metadata)


def _fresh(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def _package(
    out: Path, labels: list[str], catalogue: Catalogue, metrics: dict[str, float], metadata: dict[str, Any]
) -> Manifest:
    """Labels, catalogue and card beside the model files, then the manifest of them all, last."""
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
