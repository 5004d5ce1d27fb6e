"""An edge model's whole history: registry versions, gaps, what reached the edge, accuracy."""

from __future__ import annotations

import pytest

from edge_sync.delivery.history import model_history
from edgecore.stack import Stack
from foundation.errors import IntegrityError
from foundation.layout import Layout, edge_model_name
from foundation.manifest import Manifest
from foundation.registry import claim_next_version
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.delivery import deliver

EDGE = "history-shop"
MODEL = edge_model_name(EDGE)


@pytest.fixture
def registry(stack: Stack, unique: str) -> tuple[ObjectStore, Layout]:
    settings = Settings().updated(buckets={"models": f"t-models-{unique}", "edge_prefix": f"t-{unique}-"})
    store = ObjectStore(settings.s3)
    store.ensure_bucket(settings.buckets.models)
    return store, Layout(settings.buckets)


def publish(store: ObjectStore, layout: Layout, accuracy: float) -> str:
    """A registry version as publish writes it: claimed, then its manifest (files omitted here)."""
    version = claim_next_version(store, layout.model_versions(MODEL), owner="test")
    manifest = Manifest(kind="model", name=MODEL, version=version, files={}, metrics={"accuracy": accuracy})
    store.put_bytes(layout.model_manifest(MODEL, version), manifest.to_bytes(), "application/json")
    return version


def test_versions_come_oldest_first_with_gaps_delivery_and_accuracy(
    registry: tuple[ObjectStore, Layout],
) -> None:
    store, layout = registry
    v1 = publish(store, layout, 0.91)
    deliver(store, layout, EDGE, v1)
    v2 = publish(store, layout, 0.95)  # gated, not yet delivered
    gap = claim_next_version(store, layout.model_versions(MODEL), owner="a publisher that died")
    deliver(store, layout, EDGE, "v000009")  # only in the edge's bucket (the registry was cleaned up)

    history = model_history(store, layout, EDGE, MODEL)

    assert [(r.version, r.in_registry, r.delivered, r.accuracy) for r in history] == [
        (v1, True, True, 0.91),  # the registry's manifest wins over the edge copy's (0.97)
        (v2, True, False, 0.95),
        (gap, False, False, None),
        ("v000009", False, True, 0.97),
    ]
    assert history[2].manifest is None


def test_no_registry_and_no_edge_bucket_is_an_empty_history(registry: tuple[ObjectStore, Layout]) -> None:
    store, layout = registry
    assert model_history(store, layout, "never-seen", edge_model_name("never-seen")) == []


def test_a_corrupt_manifest_is_reported_not_skipped(registry: tuple[ObjectStore, Layout]) -> None:
    store, layout = registry
    version = claim_next_version(store, layout.model_versions(MODEL), owner="test")
    store.put_bytes(layout.model_manifest(MODEL, version), b"{not json", "application/json")

    with pytest.raises(IntegrityError, match="manifest"):
        model_history(store, layout, EDGE, MODEL)
