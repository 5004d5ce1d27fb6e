"""ingest: dataset versions from the real MinIO into a local snapshot, filtered by catalogue."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from components.ingest import ingest
from edgecore.synthetic.upload import upload_folder
from foundation.catalogue import Catalogue
from foundation.errors import NotFound
from foundation.layout import Layout
from foundation.manifest import Manifest
from foundation.storage.store import ObjectStore
from testkit.training import jpeg, tiny_store

EDGE = "boutique"


@pytest.fixture
def uploaded(tmp_path: Path, iso_store: ObjectStore, iso_layout: Layout) -> Manifest:
    return upload_folder(iso_store, iso_layout, tiny_store(tmp_path / "photos", EDGE, images=2), "shop")


def test_the_snapshot_holds_every_image_of_the_catalogue_verified_with_its_manifest(
    tmp_path: Path, iso_store: ObjectStore, iso_layout: Layout, uploaded: Manifest
) -> None:
    snapshot = ingest(iso_store, iso_layout, EDGE, ["shop"], tmp_path / "snap")
    assert snapshot.metadata["datasets"] == ["shop@v000001"]
    assert snapshot.labels == uploaded.labels
    images = {name for name in snapshot.files if name.startswith("images/")}
    assert images == set(uploaded.files)
    Manifest.from_bytes((tmp_path / "snap" / "manifest.json").read_bytes(), "snap").verify_dir(
        tmp_path / "snap"
    )


def test_only_skus_the_edge_still_sells_are_kept(
    tmp_path: Path, iso_store: ObjectStore, iso_layout: Layout, uploaded: Manifest
) -> None:
    home = iso_layout.core_catalogue_home(EDGE)
    full = Catalogue.from_bytes(iso_store.get_bytes(home.catalogue))
    smaller = full.model_copy(update={"products": full.products[:2]})
    iso_store.put_bytes(home.catalogue, smaller.to_bytes())
    snapshot = ingest(iso_store, iso_layout, EDGE, ["shop"], tmp_path / "snap")
    assert snapshot.labels == smaller.skus
    assert {name.split("/")[1] for name in snapshot.files if name.startswith("images/")} == set(smaller.skus)


def test_a_bare_name_means_the_newest_complete_version_and_a_pinned_one_is_honoured(
    tmp_path: Path, iso_store: ObjectStore, iso_layout: Layout, uploaded: Manifest
) -> None:
    upload_folder(iso_store, iso_layout, tmp_path / "photos" / EDGE, "shop")
    assert ingest(iso_store, iso_layout, EDGE, ["shop"], tmp_path / "a").metadata["datasets"] == [
        "shop@v000002"
    ]
    pinned = ingest(iso_store, iso_layout, EDGE, ["shop@v000001"], tmp_path / "b")
    assert pinned.metadata["datasets"] == ["shop@v000001"]


def test_a_history_reference_takes_every_complete_version_up_to_the_one_named(
    tmp_path: Path, iso_store: ObjectStore, iso_layout: Layout, uploaded: Manifest
) -> None:
    upload_folder(iso_store, iso_layout, tmp_path / "photos" / EDGE, "shop")
    upload_folder(iso_store, iso_layout, tmp_path / "photos" / EDGE, "shop")
    snapshot = ingest(iso_store, iso_layout, EDGE, ["shop@..v000002"], tmp_path / "snap")
    assert snapshot.metadata["datasets"] == ["shop@v000001", "shop@v000002"]


def test_an_open_history_reference_takes_every_complete_version(
    tmp_path: Path, iso_store: ObjectStore, iso_layout: Layout, uploaded: Manifest
) -> None:
    upload_folder(iso_store, iso_layout, tmp_path / "photos" / EDGE, "shop")
    snapshot = ingest(iso_store, iso_layout, EDGE, ["shop@.."], tmp_path / "snap")
    assert snapshot.metadata["datasets"] == ["shop@v000001", "shop@v000002"]


def test_a_history_reference_to_a_missing_version_is_a_clear_not_found(
    tmp_path: Path, iso_store: ObjectStore, iso_layout: Layout, uploaded: Manifest
) -> None:
    with pytest.raises(NotFound, match=r"version v000004 does not exist \(history shop@..v000004\)"):
        ingest(iso_store, iso_layout, EDGE, ["shop@..v000004"], tmp_path / "snap")


def test_hard_examples_reach_training_only_inside_shipped_sets_not_from_the_edge_bucket(
    tmp_path: Path, iso_store: ObjectStore, iso_layout: Layout, uploaded: Manifest
) -> None:
    labelled = jpeg(colour=(10, 200, 30))
    iso_store.put_bytes(iso_layout.hard_example(EDGE, "CAVIAR-50", "kiosk-7", "jpg"), labelled)

    snapshot = ingest(iso_store, iso_layout, EDGE, ["shop"], tmp_path / "snap")

    assert hashlib.sha256(labelled).hexdigest() not in {entry.sha256 for entry in snapshot.files.values()}
    assert {name for name in snapshot.files if name.startswith("images/")} == set(uploaded.files)


def test_a_missing_dataset_is_a_clear_not_found_naming_it(
    tmp_path: Path, iso_store: ObjectStore, iso_layout: Layout, uploaded: Manifest
) -> None:
    with pytest.raises(NotFound, match="dataset 'no-such-photos'"):
        ingest(iso_store, iso_layout, EDGE, ["shop", "no-such-photos"], tmp_path / "snap")
    with pytest.raises(NotFound, match="dataset 'shop' version v000009 does not exist"):
        ingest(iso_store, iso_layout, EDGE, ["shop@v000009"], tmp_path / "snap")


def test_an_edge_without_a_catalogue_is_a_clear_not_found(
    tmp_path: Path, iso_store: ObjectStore, iso_layout: Layout, uploaded: Manifest
) -> None:
    with pytest.raises(NotFound, match="edge 'nowhere' has no catalogue"):
        ingest(iso_store, iso_layout, "nowhere", ["shop"], tmp_path / "snap")
