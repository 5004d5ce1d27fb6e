"""Helpers and fixtures of the training tests (a pytest plugin, registered in conftest.py)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecore.layout import Layout
from edgecore.settings import Settings
from edgecore.stack import Stack
from edgecore.storage import ObjectStore
from edgecore.synthetic.generator import generate_store

ENV = {
    "training_bucket": "EDGECORE_TRAINING_BUCKET",
    "models_bucket": "EDGECORE_MODELS_BUCKET",
    "edge_bucket_prefix": "EDGECORE_EDGE_BUCKET_PREFIX",
    "topic_model_published": "EDGECORE_TOPIC_MODEL_PUBLISHED",
}


@pytest.fixture
def isolated(stack: Stack, unique: str) -> Settings:
    """Settings whose buckets and topic belong to this test alone."""
    return Settings(
        training_bucket=f"t-train-{unique}",
        models_bucket=f"t-models-{unique}",
        edge_bucket_prefix=f"t-{unique}-",
        topic_model_published=f"t-published-{unique}",
    )


@pytest.fixture
def iso_store(isolated: Settings) -> ObjectStore:
    return ObjectStore(isolated)


@pytest.fixture
def iso_layout(isolated: Settings) -> Layout:
    return Layout(isolated)


def env_for(settings: Settings) -> dict[str, str]:
    """The EDGECORE_* variables that make a subprocess use the same buckets and topic."""
    return {var: str(getattr(settings, field)) for field, var in ENV.items()}


def tiny_store(root: Path, edge: str = "boutique", images: int = 6, seed: int = 1) -> Path:
    """A generated photo folder of one demo store: ``root/<edge>``."""
    generate_store(root, edge, seed, images)
    return root / edge


def jpeg(
    width: int = 320, height: int = 240, colour: tuple[int, int, int] = (200, 40, 40), **save: object
) -> bytes:
    rng = np.random.default_rng(sum(colour) + width)
    pixels = np.clip(rng.normal(colour, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()
