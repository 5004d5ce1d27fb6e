"""A model version is used only once every file matches its manifest; LiteRT first, SavedModel as fallback."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from foundation.errors import IntegrityError, NotFound
from foundation.layout import LABELS_FILE, MANIFEST, TFLITE_FILE, Layout, edge_model_name
from foundation.manifest import Manifest, entries_for_dir
from foundation.openset import OPENSET_FILE, OpenSet
from foundation.preprocessing import preprocess
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from serving.model_version import CACHED_VERSIONS, VersionStore, open_version
from testkit.serving import LABELS, kiosk_jpeg, upload_version, write_version

EDGE = "versions"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_version(tmp_path / "v000004", EDGE, "v000004")


@pytest.fixture
def settings_here(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


def _rewrite_manifest(root: Path, **changes: object) -> None:
    manifest = Manifest.from_bytes((root / MANIFEST).read_bytes(), str(root))
    (root / MANIFEST).write_bytes(manifest.model_copy(update=changes).to_bytes())


def test_a_verified_version_runs_litert_and_knows_its_catalogue(root: Path, settings_here: Settings) -> None:
    version = open_version(root, settings_here)

    assert (version.name, version.version) == (edge_model_name(EDGE), "v000004")
    assert version.runner.kind == "litert"
    assert list(version.labels) == LABELS
    assert version.products[0] == {
        "name": "Red apple",
        "price": "0.45",
        "currency": "EUR",
        "promotion": "3 for 1.20",
    }


def test_a_file_changed_after_publishing_is_refused(root: Path, settings_here: Settings) -> None:
    (root / LABELS_FILE).write_text(json.dumps(list(reversed(LABELS))))

    with pytest.raises(IntegrityError, match=LABELS_FILE):
        open_version(root, settings_here)


def test_a_folder_without_manifest_is_not_a_version(root: Path, settings_here: Settings) -> None:
    (root / MANIFEST).unlink()

    with pytest.raises(NotFound, match=MANIFEST):
        open_version(root, settings_here)


def test_labels_missing_from_the_catalogue_are_refused(root: Path, settings_here: Settings) -> None:
    labels = [*LABELS[:2], "MYSTERY-BOX"]
    (root / LABELS_FILE).write_text(json.dumps(labels))
    _rewrite_manifest(root, files=entries_for_dir(root), labels=labels)

    with pytest.raises(IntegrityError, match="MYSTERY-BOX"):
        open_version(root, settings_here)


def test_without_a_tflite_file_the_saved_model_answers_the_same(root: Path, settings_here: Settings) -> None:
    litert = open_version(root, settings_here)
    (root / TFLITE_FILE).unlink()
    _rewrite_manifest(root, files=entries_for_dir(root))
    pixels = np.stack([preprocess(kiosk_jpeg(label, 300), 64) for label in LABELS])

    fallback = open_version(root, settings_here)

    assert fallback.runner.kind == "saved_model"
    np.testing.assert_allclose(
        fallback.runner(pixels).probabilities, litert.runner(pixels).probabilities, atol=1e-5
    )


def test_a_version_of_the_shipped_network_outputs_each_photos_largest_cosine_in_both_runtimes(
    tmp_path: Path, settings_here: Settings
) -> None:
    root = write_version(tmp_path / "v000005", EDGE, "v000005", production=True)
    pixels = np.stack([preprocess(kiosk_jpeg(label, 301), 64) for label in LABELS])
    litert = open_version(root, settings_here).runner(pixels)
    (root / TFLITE_FILE).unlink()
    _rewrite_manifest(root, files=entries_for_dir(root))

    fallback = open_version(root, settings_here).runner(pixels)

    assert litert.cosine is not None and fallback.cosine is not None and litert.cosine.shape == (len(LABELS),)
    np.testing.assert_allclose(fallback.cosine, litert.cosine, atol=1e-5)
    assert (np.abs(litert.cosine) <= 1.0).all()


def test_a_version_with_a_cosine_threshold_flags_exactly_the_photos_below_it(
    tmp_path: Path, settings_here: Settings
) -> None:
    root = write_version(tmp_path / "v000006", EDGE, "v000006", production=True)
    pixels = np.stack([preprocess(kiosk_jpeg(label, 302 + i), 64) for i in range(3) for label in LABELS])
    cosine = open_version(root, settings_here).runner(pixels).cosine
    assert cosine is not None
    threshold = float(np.median(cosine))
    calibration = OpenSet(temperature=1.0, min_confidence=1.0, flag_rate=0.01, min_cosine=threshold)
    (root / OPENSET_FILE).write_bytes(calibration.to_bytes())
    _rewrite_manifest(root, files=entries_for_dir(root))

    decision = open_version(root, settings_here).decide(pixels, 1.0)

    assert decision.recognized.tolist() == (cosine >= threshold).tolist()
    assert 0 < decision.recognized.sum() < len(pixels)  # a confidence of 1.0 alone would flag them all


def test_a_cosine_threshold_for_a_model_without_a_cosine_output_is_refused(
    root: Path, settings_here: Settings
) -> None:
    calibration = OpenSet(temperature=1.0, min_confidence=0.5, flag_rate=0.01, min_cosine=0.7)
    (root / OPENSET_FILE).write_bytes(calibration.to_bytes())
    _rewrite_manifest(root, files=entries_for_dir(root))

    with pytest.raises(IntegrityError, match="cosine"):
        open_version(root, settings_here)


def test_an_s3_version_is_downloaded_verified_into_the_cache(
    root: Path, settings_here: Settings, store: ObjectStore, layout: Layout
) -> None:
    edge = f"ver-{uuid.uuid4().hex[:10]}"
    uri = upload_version(store, layout.edge_model_prefix(edge, edge_model_name(EDGE), "v000004"), root)

    version = VersionStore(store, settings_here.state_dir / "serving", settings_here).open(uri)

    assert version.version == "v000004"
    assert version.root.is_relative_to(settings_here.state_dir)
    assert (version.root / TFLITE_FILE).read_bytes() == (root / TFLITE_FILE).read_bytes()


def test_the_cache_keeps_only_the_newest_copies_of_a_model(
    tmp_path: Path, settings_here: Settings, store: ObjectStore, layout: Layout
) -> None:
    edge = f"ver-{uuid.uuid4().hex[:10]}"
    versions = [f"v00000{n}" for n in range(1, CACHED_VERSIONS + 3)]
    cache = VersionStore(store, settings_here.state_dir / "serving", settings_here)
    for version in versions:
        folder = write_version(tmp_path / version, EDGE, version)
        prefix = layout.edge_model_prefix(edge, edge_model_name(EDGE), version)
        cache.open(upload_version(store, prefix, folder))

    kept = sorted(p.name for p in (settings_here.state_dir / "serving" / edge_model_name(EDGE)).iterdir())

    assert kept == versions[-CACHED_VERSIONS:]


def test_an_s3_prefix_without_a_version_is_not_found(
    settings_here: Settings, store: ObjectStore, bucket: str
) -> None:
    with pytest.raises(NotFound, match="no model version"):
        VersionStore(store, settings_here.state_dir / "serving", settings_here).open(
            f"s3://{bucket}/models/nothing-here/v000001/"
        )
