"""prepare: bad photos are counted not fatal, privacy clean-up, shared preprocessing, split."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from components.ingest import IMAGES_DIR
from components.prepare import PreparedData, prepare, stratified_split
from components.privacy import find_faces, strip_jpeg_metadata
from edgecore.synthetic import real
from edgecore.synthetic.photos import photo_rng
from foundation.errors import InvalidInput
from foundation.layout import MANIFEST
from foundation.manifest import Manifest
from foundation.preprocessing import decode, preprocess
from testkit.training import jpeg, tiny_store

SIZE = 64


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_store(tmp_path_factory.mktemp("photos"), "boutique", images=5)


def snapshot_of(photos: Path, dest: Path) -> Path:
    """An ingest-shaped folder: images/<SKU>/* and catalogue.json."""
    for folder in photos.iterdir():
        if folder.is_dir():
            shutil.copytree(folder, dest / IMAGES_DIR / folder.name)
    shutil.copy(photos / "catalogue.json", dest / "catalogue.json")
    return dest


def test_corrupt_too_small_and_duplicate_photos_are_dropped_and_counted(photos: Path, tmp_path: Path) -> None:
    snap = snapshot_of(photos, tmp_path / "snap")
    caviar = snap / IMAGES_DIR / "CAVIAR-50"
    good = (caviar / "0000.jpg").read_bytes()
    (caviar / "copy.jpg").write_bytes(good)
    (caviar / "text.jpg").write_bytes(b"this is not an image")
    (caviar / "cut.jpg").write_bytes(good[: len(good) // 2])
    (caviar / "thumb.jpg").write_bytes(jpeg(40, 30))
    report = prepare(snap, tmp_path / "out", SIZE)
    assert report.dropped == {"corrupt": 2, "too_small": 1, "duplicate": 1}
    assert report.seen == 6 * 5 + 4 and report.kept == 6 * 5
    assert {d["file"] for d in report.drops} == {
        f"CAVIAR-50/{n}.jpg" for n in ("copy", "text", "cut", "thumb")
    }
    assert PreparedData(tmp_path / "out").report["dropped"] == report.dropped


def test_tensors_are_exactly_the_shared_preprocessing_of_the_photo(photos: Path, tmp_path: Path) -> None:
    prepare(snapshot_of(photos, tmp_path / "snap"), tmp_path / "out", SIZE)
    data = PreparedData(tmp_path / "out")
    split = data.split("train")
    for x, name in zip(split.x[:5], split.files[:5], strict=True):
        np.testing.assert_array_equal(x, preprocess((photos / name).read_bytes(), SIZE))


def test_every_sku_is_in_every_split_with_the_same_split_for_the_same_seed(
    photos: Path, tmp_path: Path
) -> None:
    snap = snapshot_of(photos, tmp_path / "snap")
    report = prepare(snap, tmp_path / "a", SIZE, seed=3)
    prepare(snap, tmp_path / "b", SIZE, seed=3)
    a, b = PreparedData(tmp_path / "a"), PreparedData(tmp_path / "b")
    for split in ("train", "val", "test"):
        assert set(a.split(split).y.tolist()) == set(range(len(a.labels)))
        assert a.split(split).files == b.split(split).files
    assert sum(report.splits.values()) == report.kept


def test_metadata_is_stripped_without_touching_a_pixel(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "KioskCam"  # Make
    exif[0x8825] = {2: (48.0, 51.0, 24.0)}  # GPS latitude
    original = jpeg(exif=exif.tobytes(), comment=b"shot at till 4")
    cleaned = strip_jpeg_metadata(original)
    assert b"KioskCam" in original and b"KioskCam" not in cleaned and b"till 4" not in cleaned
    assert not Image.open(io.BytesIO(cleaned)).getexif()
    np.testing.assert_array_equal(
        np.asarray(Image.open(io.BytesIO(cleaned))), np.asarray(Image.open(io.BytesIO(original)))
    )


def _with_selfie(photos: Path, dest: Path, blur: bool) -> tuple[Path, Image.Image, bytes]:
    """A snapshot with a photo showing a face, from a dataset that does (or does not) ask for blurring."""
    snap = snapshot_of(photos, dest)
    portrait = Image.new("RGB", (640, 480), (90, 120, 90))
    astronaut = skdata.astronaut()  # type: ignore[no-untyped-call]
    portrait.paste(Image.fromarray(astronaut).resize((480, 480)), (80, 0))
    buf = io.BytesIO()
    portrait.save(buf, "JPEG", quality=92)
    (snap / IMAGES_DIR / "CAVIAR-50" / "selfie.jpg").write_bytes(buf.getvalue())
    blurred = [f"{IMAGES_DIR}/CAVIAR-50/selfie.jpg"] if blur else []
    manifest = Manifest(kind="dataset", name="s", version="v", files={}, metadata={"blur_faces": blurred})
    (snap / MANIFEST).write_bytes(manifest.to_bytes())
    return snap, portrait, buf.getvalue()


FACE = (slice(40, 160), slice(240, 360))  # the astronaut's face, scaled to 480 px


def _sharpness(image: Image.Image) -> float:
    return float(np.abs(np.diff(np.asarray(image.convert("L"), np.float32)[FACE], axis=1)).mean())


def test_faces_are_blurred_when_the_dataset_asks_for_it(photos: Path, tmp_path: Path) -> None:
    snap, portrait, selfie = _with_selfie(photos, tmp_path / "snap", blur=True)
    report = prepare(snap, tmp_path / "out", SIZE)
    assert report.faces_blurred >= 1
    kept = tmp_path / "out" / "clean" / "CAVIAR-50" / f"{hashlib.sha256(selfie).hexdigest()}.jpg"
    assert _sharpness(Image.open(kept)) < 0.5 * _sharpness(portrait)


def test_photos_are_left_as_taken_when_the_dataset_does_not_ask_for_blurring(
    photos: Path, tmp_path: Path
) -> None:
    snap, _, selfie = _with_selfie(photos, tmp_path / "snap", blur=False)
    report = prepare(snap, tmp_path / "out", SIZE)
    assert report.faces_blurred == 0
    kept = tmp_path / "out" / "clean" / "CAVIAR-50" / f"{hashlib.sha256(selfie).hexdigest()}.jpg"
    assert kept.read_bytes() == strip_jpeg_metadata(selfie)


def test_the_face_detector_does_not_fire_on_product_photos_without_people() -> None:
    products = [p for p in real.SOURCES if p.sku not in real.WITH_FACES]
    shots = [
        real.render_art(real.sprite(p.sku), photo_rng(5, "faces", p.sku, i))
        for p in products
        for i in range(2)
    ]
    assert [find_faces(decode(shot, min_side=150)) for shot in shots] == [[]] * len(shots)


def test_a_sku_left_with_too_few_photos_is_a_clear_error(photos: Path, tmp_path: Path) -> None:
    snap = snapshot_of(photos, tmp_path / "snap")
    for extra in list((snap / IMAGES_DIR / "CAVIAR-50").iterdir())[2:]:
        extra.unlink()
    with pytest.raises(InvalidInput, match=r"fewer than 3 usable photos for SKUs \['CAVIAR-50'\]"):
        prepare(snap, tmp_path / "out", SIZE)


def test_a_photo_keeps_its_split_when_more_photos_and_products_arrive() -> None:
    def split_of(labels: list[int], names: list[str]) -> dict[str, str]:
        parts = stratified_split(np.asarray(labels, dtype=np.int32), names, (0.15, 0.15), seed=0)
        return {names[i]: split for split, idx in parts.items() for i in idx}

    first_names = [f"A/{k:03d}.jpg" for k in range(40)] + [f"B/{k:03d}.jpg" for k in range(40)]
    first = split_of([0] * 40 + [1] * 40, first_names)
    later_names = [
        *first_names,
        *(f"A/{k:03d}.jpg" for k in range(40, 90)),
        *(f"C/{k}.jpg" for k in range(30)),
    ]
    later = split_of([0] * 40 + [1] * 40 + [0] * 50 + [2] * 30, later_names)

    assert all(later[name] == split for name, split in first.items())
    assert {"train", "val", "test"} == set(first.values())


def test_a_product_with_three_photos_has_one_in_each_split() -> None:
    parts = stratified_split(np.zeros(3, dtype=np.int32), ["a", "b", "c"], (0.15, 0.15), seed=0)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [1, 1, 1]
