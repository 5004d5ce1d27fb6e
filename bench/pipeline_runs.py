"""What the pipeline benchmarks share: isolated buckets on the real stack, reading a local run."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from components.evaluate import Evaluation
from edgecore.synthetic.generator import generate
from edgecore.synthetic.upload import upload_folder
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore


def isolated_settings() -> Settings:
    """Fresh buckets and topic for this benchmark run, exported for the component subprocesses."""
    tag = uuid.uuid4().hex[:8]
    values = {
        "EDGECORE_TRAINING_BUCKET": f"bench-train-{tag}",
        "EDGECORE_MODELS_BUCKET": f"bench-models-{tag}",
        "EDGECORE_EDGE_BUCKET_PREFIX": f"bench-{tag}-",
        "EDGECORE_TOPIC_MODEL_PUBLISHED": f"bench-published-{tag}",
    }
    os.environ.update(values)  # the entry point configures the runs it starts
    return Settings()


def upload_demo(
    settings: Settings, root: Path, seed: int, images: int, edges: list[str], new_product: bool = False
) -> None:
    """Generate the demo photos and put each edge's folder in its bucket, as its gateway would have."""
    generate(root, seed, images, edges, new_product)
    store, layout = ObjectStore(settings.s3), Layout(settings.buckets)
    for edge in edges:
        upload_folder(store, layout, root / edge, edge)


def evaluations(pipeline_root: Path) -> dict[str, Evaluation]:
    """Each edge's evaluation in a local run, read from the evaluate step's artifacts."""
    found: dict[str, Evaluation] = {}
    for path in pipeline_root.rglob("evaluate-op/evaluation"):
        title = (path.parent / "report").read_text().splitlines()[0]
        found[title.split("`")[1]] = Evaluation.load(path)
    return found
