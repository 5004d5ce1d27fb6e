"""Helpers of the training tests and benchmarks: generated stores, photos, subprocess settings."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from edgecore.synthetic.generator import generate_store
from foundation.settings import Settings

ENV = (
    "EDGECORE_TRAINING_BUCKET",
    "EDGECORE_MODELS_BUCKET",
    "EDGECORE_EDGE_BUCKET_PREFIX",
    "EDGECORE_TOPIC_MODEL_PUBLISHED",
)


def env_for(settings: Settings) -> dict[str, str]:
    """The EDGECORE_* variables that make a subprocess use the same buckets and topic."""
    env = settings.environment()
    return {name: env[name] for name in ENV}


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
