"""The demo catalogue generator, the import of real photo folders, and dataset upload."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from PIL import Image

from edgecore.synthetic.folder import LabelledFolder, import_photos, sku_for_label
from edgecore.synthetic.generator import generate_store
from edgecore.synthetic.products import BOUTIQUE, HYPERMARKET, demo_catalogue, new_product
from edgecore.synthetic.upload import upload_folder
from foundation.catalogue import Catalogue
from foundation.errors import InvalidInput
from foundation.layout import Layout
from foundation.manifest import Manifest
from foundation.registry import claim_next_version
from foundation.storage.store import ObjectStore
from testkit.training import jpeg


def test_the_same_seed_gives_the_same_photos_and_another_seed_other_photos(tmp_path: Path) -> None:
    generate_store(tmp_path / "a", BOUTIQUE, seed=5, images_per_product=2)
    generate_store(tmp_path / "b", BOUTIQUE, seed=5, images_per_product=2)
    generate_store(tmp_path / "c", BOUTIQUE, seed=6, images_per_product=2)
    photo = Path(BOUTIQUE) / "CAVIAR-50" / "0001.jpg"
    assert (tmp_path / "a" / photo).read_bytes() == (tmp_path / "b" / photo).read_bytes()
    assert (tmp_path / "a" / photo).read_bytes() != (tmp_path / "c" / photo).read_bytes()


def test_photos_are_640_by_480_jpegs_in_a_folder_per_sku_with_the_catalogue(tmp_path: Path) -> None:
    catalogue = generate_store(tmp_path, BOUTIQUE, seed=1, images_per_product=3)
    folder = LabelledFolder.open(tmp_path / BOUTIQUE)
    assert folder.catalogue == catalogue
    photos = folder.photos()
    assert sorted(photos) == catalogue.skus and all(len(p) == 3 for p in photos.values())
    image = Image.open(io.BytesIO(photos["CAVIAR-50"][0].read_bytes()))
    assert (image.format, image.size) == ("JPEG", (640, 480))


def test_two_stores_have_different_catalogues_sharing_a_few_skus() -> None:
    hyper, boutique = demo_catalogue(HYPERMARKET), demo_catalogue(BOUTIQUE)
    assert len(hyper.products) == 12 and len(boutique.products) == 6
    assert 2 <= len(set(hyper.skus) & set(boutique.skus)) <= 4
    assert any(p.promotion for p in hyper.products)


def test_the_new_product_arrives_at_one_store_only_when_asked() -> None:
    late = new_product().sku
    assert late not in demo_catalogue(HYPERMARKET).skus
    assert late in demo_catalogue(HYPERMARKET, with_new_product=True).skus
    assert late not in demo_catalogue(BOUTIQUE, with_new_product=True).skus


def test_real_photos_are_imported_from_a_folder_per_label(tmp_path: Path) -> None:
    for label in ("oat milk", "Espresso Beans"):
        (tmp_path / "src" / label).mkdir(parents=True)
        (tmp_path / "src" / label / "a.jpeg").write_bytes(jpeg())
    catalogue = import_photos(tmp_path / "src", "corner-shop", tmp_path / "out")
    assert catalogue.skus == ["ESPRESSO-BEANS", "OAT-MILK"]
    assert (tmp_path / "out" / "corner-shop" / "OAT-MILK" / "a.jpg").read_bytes() == jpeg()
    assert (
        Catalogue.from_bytes((tmp_path / "out" / "corner-shop" / "catalogue.json").read_bytes()) == catalogue
    )


def test_two_labels_that_become_the_same_sku_are_refused(tmp_path: Path) -> None:
    for label in ("oat milk", "oat-milk"):
        (tmp_path / "src" / label).mkdir(parents=True)
    assert sku_for_label("oat milk") == sku_for_label("oat-milk")
    with pytest.raises(InvalidInput, match="both become SKU OAT-MILK"):
        import_photos(tmp_path / "src", "corner-shop", tmp_path / "out")


def test_an_upload_is_the_next_dataset_version_with_every_photo_in_its_manifest(
    tmp_path: Path, iso_store: ObjectStore, iso_layout: Layout
) -> None:
    generate_store(tmp_path, BOUTIQUE, seed=1, images_per_product=2)
    first = upload_folder(iso_store, iso_layout, tmp_path / BOUTIQUE, "boutique-photos")
    second = upload_folder(iso_store, iso_layout, tmp_path / BOUTIQUE, "boutique-photos")
    assert (first.version, second.version) == ("v000001", "v000002")
    assert len(first.files) == 12 and first.labels == demo_catalogue(BOUTIQUE).skus
    stored = Manifest.from_bytes(
        iso_store.get_bytes(iso_layout.dataset_manifest("boutique-photos", "v000001")), "t"
    )
    prefix = iso_layout.dataset_prefix("boutique-photos", "v000001")
    for name, entry in stored.files.items():
        assert iso_store.head(type(prefix)(prefix.bucket, prefix.key + name)).sha256 == entry.sha256
    catalogue = json.loads(iso_store.get_bytes(iso_layout.core_catalogue_home(BOUTIQUE).catalogue))
    assert catalogue["edge"] == BOUTIQUE


def test_concurrent_uploads_never_claim_the_same_version(iso_store: ObjectStore, iso_layout: Layout) -> None:
    iso_store.ensure_bucket(iso_layout.training_bucket)
    claimed: list[str] = []
    lock = threading.Lock()

    def claim() -> None:
        version = claim_next_version(
            iso_store, iso_layout.dataset_versions("race"), owner=threading.current_thread().name
        )
        with lock:
            claimed.append(version)

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(claimed)) == 6
