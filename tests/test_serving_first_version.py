"""A new edge's server finds its first version without being told where it lies."""

from __future__ import annotations

from pathlib import Path

import pytest

from foundation.errors import NotFound
from foundation.layout import Layout, edge_model_name
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from serving.model_version import VersionStore
from serving.repository import EdgeModelRepository
from testkit.serving import publish_to_edge, upload_version, write_version


def _repository(edge: str, store: ObjectStore, layout: Layout, tmp_path: Path) -> EdgeModelRepository:
    settings = Settings(state_dir=tmp_path / "state")
    versions = VersionStore(store, tmp_path / "state" / "serving", settings)
    return EdgeModelRepository(edge_model_name(edge), edge, store, layout, versions, None)


def _publish(store: ObjectStore, layout: Layout, tmp_path: Path, edge: str, version: str) -> None:
    """A gated version in the core registry, not yet delivered to the edge."""
    root = write_version(tmp_path / "published" / version, edge, version)
    upload_version(store, layout.model_prefix(edge_model_name(edge), version), root)


def test_without_a_pointer_the_newest_version_published_at_the_core_is_served(
    store: ObjectStore, layout: Layout, unique: str, tmp_path: Path
) -> None:
    edge = f"first-{unique}"
    _publish(store, layout, tmp_path, edge, "v000001")
    _publish(store, layout, tmp_path, edge, "v000002")

    assert _repository(edge, store, layout, tmp_path).open_current().version == "v000002"


def test_a_version_delivered_to_the_edge_is_served_before_one_only_published(
    store: ObjectStore, layout: Layout, unique: str, tmp_path: Path
) -> None:
    edge = f"first-{unique}"
    publish_to_edge(store, layout, tmp_path / "delivered", edge, "v000001", seed=0)
    _publish(store, layout, tmp_path, edge, "v000002")

    assert _repository(edge, store, layout, tmp_path).open_current().version == "v000001"


def test_an_edge_with_no_version_anywhere_is_told_how_to_get_one(
    store: ObjectStore, layout: Layout, unique: str, tmp_path: Path
) -> None:
    edge = f"first-{unique}"
    store.ensure_bucket(layout.edge_bucket(edge))

    with pytest.raises(NotFound, match="pipeline run --local"):
        _repository(edge, store, layout, tmp_path).open_current()
