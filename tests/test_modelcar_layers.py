"""A modelcar's model layer is unpacked only as its manifest allows: nothing else reaches the disk."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from foundation.errors import IntegrityError
from foundation.manifest import Manifest, entries_for_dir
from foundation.modelcar import model_layer, model_layer_entry, unpack


def _version(folder: Path) -> tuple[Path, Manifest]:
    folder.mkdir()
    (folder / "model.tflite").write_bytes(b"weights" * 100)
    (folder / "labels.json").write_text('["A", "B"]')
    manifest = Manifest(kind="model", name="north-products", version="v000002", files=entries_for_dir(folder))
    return folder, manifest


def _layer(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> io.BytesIO:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return io.BytesIO(gzip.compress(raw.getvalue()))


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_a_layer_built_from_a_version_unpacks_to_exactly_its_files(tmp_path: Path) -> None:
    files, manifest = _version(tmp_path / "v")
    layer = model_layer(files, manifest, tmp_path / "layer.tar.gz")
    (tmp_path / "out").mkdir()

    with layer.path.open("rb") as blob:
        found = unpack(blob, tmp_path / "out", "layer", manifest)

    assert found == manifest
    manifest.verify_dir(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "labels.json",
        "manifest.json",
        "model.tflite",
    ]


def test_building_the_same_version_twice_gives_the_same_layer(tmp_path: Path) -> None:
    files, manifest = _version(tmp_path / "v")

    first = model_layer(files, manifest, tmp_path / "a" / "layer.tar.gz")
    second = model_layer(files, manifest, tmp_path / "b" / "layer.tar.gz")

    assert (first.digest, first.diff_id) == (second.digest, second.diff_id)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(_file("models/unlisted.bin", b"x"), id="a file its manifest does not list"),
        pytest.param(_file("models/model.tflite", b"other size"), id="a listed file at another size"),
        pytest.param(_file("models/../escape.txt", b"x"), id="a name leaving the folder"),
        pytest.param(_file("etc/passwd", b"x"), id="a file outside models/"),
    ],
)
def test_a_member_the_manifest_does_not_allow_is_refused_before_it_is_written(
    tmp_path: Path, extra: tuple[tarfile.TarInfo, bytes]
) -> None:
    _, manifest = _version(tmp_path / "v")
    layer = _layer([_file("models/manifest.json", manifest.to_bytes()), extra])
    (tmp_path / "out").mkdir()

    with pytest.raises(IntegrityError):
        unpack(layer, tmp_path / "out", "layer", manifest)

    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["manifest.json"]


def test_a_link_in_the_layer_is_refused(tmp_path: Path) -> None:
    _, manifest = _version(tmp_path / "v")
    link = tarfile.TarInfo("models/model.tflite")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    (tmp_path / "out").mkdir()

    with pytest.raises(IntegrityError, match="unexpected layer member"):
        unpack(
            _layer([_file("models/manifest.json", manifest.to_bytes()), (link, None)]), tmp_path / "out", "l"
        )


def test_a_layer_holding_another_version_than_expected_is_refused_before_its_files(tmp_path: Path) -> None:
    _, manifest = _version(tmp_path / "v")
    other = manifest.model_copy(update={"version": "v000003"})
    (tmp_path / "out").mkdir()

    with pytest.raises(IntegrityError, match="holds north-products v000003, not north-products v000002"):
        unpack(_layer([_file("models/manifest.json", other.to_bytes())]), tmp_path / "out", "l", manifest)


def test_the_model_layer_must_be_the_last_so_no_later_layer_can_change_models() -> None:
    models = {"digest": "sha256:" + "1" * 64, "size": 10, "annotations": {"io.edgecore.layer": "models"}}
    later = {"digest": "sha256:" + "2" * 64, "size": 10}

    with pytest.raises(IntegrityError, match="the last"):
        model_layer_entry({"layers": [models, later]}, "image")
    assert model_layer_entry({"layers": [later, models]}, "image") == models


def test_a_model_layer_larger_than_the_version_s_files_can_make_is_refused_unread(tmp_path: Path) -> None:
    _, manifest = _version(tmp_path / "v")
    huge = {"digest": "sha256:" + "1" * 64, "size": 10**10, "annotations": {"io.edgecore.layer": "models"}}

    with pytest.raises(IntegrityError, match="larger"):
        model_layer_entry({"layers": [huge]}, "image", manifest)
