"""Fixtures of the training tests (a pytest plugin, registered in conftest.py)."""

from __future__ import annotations

import pytest

from edgecore.stack import Stack
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore


@pytest.fixture
def isolated(stack: Stack, unique: str) -> Settings:
    """Settings whose buckets and topic belong to this test alone."""
    return Settings().updated(
        buckets={
            "training": f"t-train-{unique}",
            "models": f"t-models-{unique}",
            "edge_prefix": f"t-{unique}-",
        },
        kafka={"topic_model_published": f"t-published-{unique}"},
    )


@pytest.fixture
def iso_store(isolated: Settings) -> ObjectStore:
    return ObjectStore(isolated.s3)


@pytest.fixture
def iso_layout(isolated: Settings) -> Layout:
    return Layout(isolated.buckets)
