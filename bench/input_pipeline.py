"""Input pipeline: training images/s through tf.data (cache, shuffle, augmentation, prefetch)
versus ``fit`` on in-memory arrays, same model, same data, same run.  Goal: ratio ≥ 0.9.

    .venv/bin/python bench/input_pipeline.py [--images 40] [--epochs 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from components.artefacts import configure_tensorflow
from components.train import TrainConfig, build_model, make_dataset, reproducible
from edgecore.synthetic.generator import generate_store
from edgecore.synthetic.products import HYPERMARKET
from foundation.preprocessing import preprocess


def arrays(images: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The same photos, preprocessed into arrays: the in-memory side, and the pipeline's input."""
    with tempfile.TemporaryDirectory() as tmp:
        catalogue = generate_store(Path(tmp), HYPERMARKET, seed=3, images_per_product=images)
        xs, ys = [], []
        for label, sku in enumerate(catalogue.skus):
            for path in sorted((Path(tmp) / HYPERMARKET / sku).glob("*.jpg")):
                xs.append(preprocess(path.read_bytes(), size))
                ys.append(label)
    return np.stack(xs), np.asarray(ys, dtype=np.int32)


def images_per_second(fit: Callable[[int], None], n: int, epochs: int) -> float:
    """Training images/s of ``fit``, after one untimed epoch that traces the graph and warms up."""
    fit(1)  # trace and warm up outside the timing
    started = time.perf_counter()
    fit(epochs)
    return n * epochs / (time.perf_counter() - started)


def main() -> None:
    """Both ways of feeding ``fit`` (same seed, model and data, one run): the ratio isolates the input."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=40, help="photos per product (12 products)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    tf = configure_tensorflow(args.threads)

    x, y = arrays(args.images, 64)
    config = TrainConfig(seed=0, threads=args.threads, outlier_weight=0.0)  # the same images either way
    rates: dict[str, float] = {}
    for name in ("in-memory arrays", "tf.data pipeline"):
        reproducible(tf, 0)  # as train() runs: op determinism also orders the augmentation
        model = build_model(int(y.max()) + 1, 64)
        piped = name == "tf.data pipeline"
        loss = "categorical_crossentropy" if piped else "sparse_categorical_crossentropy"  # one-hot targets
        model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        dataset = make_dataset(tf, x, y, config, True, int(y.max()) + 1) if piped else None

        def fit(epochs: int, model: Any = model, dataset: Any = dataset) -> None:
            if dataset is None:
                model.fit(x, y, batch_size=config.batch_size, epochs=epochs, shuffle=True, verbose=0)
            else:
                model.fit(dataset, epochs=epochs, verbose=0)

        rates[name] = images_per_second(fit, len(y), args.epochs)
        print(f"{name:>18}: {rates[name]:8.1f} images/s")
    ratio = rates["tf.data pipeline"] / rates["in-memory arrays"]
    print(f"ratio tf.data / arrays = {ratio:.3f} (goal >= 0.9) on {len(y)} images, {args.threads} thread(s)")


if __name__ == "__main__":
    main()
