"""ingest reads both dataset forms: one object per image (uploaded folders) and a tar shard
per shipped set (the core receiver), each image verified against the manifest's sha256."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from components.ingest import ingest
from edge_sync.uplink.archive import (
    DIGEST_HEADER,
    END_OF_ARCHIVE,
    dataset_path,
    member_header,
    padding,
    set_digest,
)
from edgecore.synthetic.upload import upload_folder
from foundation.credentials import new_token
from foundation.errors import IntegrityError
from foundation.layout import Layout
from foundation.manifest import Manifest
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.training import tiny_store
from testkit.uplink import free_port, front_door, serving

EDGE = "boutique"
TOKEN = new_token()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return tiny_store(tmp_path / "photos", EDGE, images=2)


@pytest.fixture
def receiver_url(isolated: Settings, iso_store: ObjectStore, unique: str, tmp_path: Path) -> Iterator[str]:
    cfg = isolated.updated(
        state_dir=tmp_path / "core", kafka={"topic_training_data_ready": f"t-tdr-{unique}"}
    )
    ensure_topics(cfg.kafka)
    producer = EventProducer(cfg.kafka, "edgecore/test-receiver")
    with front_door(cfg, {EDGE: TOKEN}, producer) as (_, app), serving(app, free_port()) as url:
        yield url
    producer.close()


def ship(url: str, folder: Path) -> str:
    """Post the folder's photos as one set, as an edge's shipper does; returns the version."""
    parts: list[bytes] = []
    paths: list[str] = []
    for path in sorted(folder.glob("*/*.jpg")):
        data = path.read_bytes()
        parts += [member_header(f"{path.parent.name}/{path.name}", len(data)), data, padding(len(data))]
        paths.append(dataset_path(path.parent.name, hashlib.sha256(data).hexdigest(), "jpg"))
    response = httpx.post(
        f"{url}/v1/edges/{EDGE}/sets",
        content=b"".join([*parts, END_OF_ARCHIVE]),
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/x-tar",
            DIGEST_HEADER: set_digest(paths),
        },
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["version"])


def test_a_snapshot_takes_images_from_an_uploaded_folder_and_from_a_shipped_shard(
    tmp_path: Path, photos: Path, receiver_url: str, iso_store: ObjectStore, iso_layout: Layout
) -> None:
    uploaded = upload_folder(iso_store, iso_layout, photos, "shop")
    version = ship(receiver_url, photos)
    shipped = Manifest.from_bytes(iso_store.get_bytes(iso_layout.dataset_manifest(EDGE, version)), "t")
    assert all(e.shard is not None for e in shipped.files.values())
    assert all(e.shard is None for e in uploaded.files.values())

    only_shard = ingest(iso_store, iso_layout, EDGE, [EDGE], tmp_path / "a")
    both = ingest(iso_store, iso_layout, EDGE, ["shop", EDGE], tmp_path / "b")

    assert only_shard.metadata["datasets"] == [f"{EDGE}@{version}"]
    assert {n for n in only_shard.files if n.startswith("images/")} == set(shipped.files)
    assert both.metadata["datasets"] == ["shop@v000001", f"{EDGE}@{version}"]
    assert {n for n in both.files if n.startswith("images/")} == set(uploaded.files) == set(shipped.files)
    for root in (tmp_path / "a", tmp_path / "b"):
        Manifest.from_bytes((root / "manifest.json").read_bytes(), "snap").verify_dir(root)


def test_a_corrupted_shard_is_refused_by_ingest(
    tmp_path: Path, photos: Path, receiver_url: str, iso_store: ObjectStore, iso_layout: Layout
) -> None:
    upload_folder(iso_store, iso_layout, photos, "shop")  # the edge's catalogue comes with it
    version = ship(receiver_url, photos)
    manifest = Manifest.from_bytes(iso_store.get_bytes(iso_layout.dataset_manifest(EDGE, version)), "t")
    entry = next(iter(manifest.files.values()))
    assert entry.shard is not None and entry.offset is not None
    shard = iso_layout.dataset_shard(EDGE, entry.shard)
    data = bytearray(iso_store.client.get_object(Bucket=shard.bucket, Key=shard.key)["Body"].read())
    data[entry.offset + entry.size // 2] ^= 0xFF  # one bit-rotten byte inside an image
    iso_store.client.put_object(Bucket=shard.bucket, Key=shard.key, Body=bytes(data))

    with pytest.raises(IntegrityError, match="does not match the expected"):
        ingest(iso_store, iso_layout, EDGE, [EDGE], tmp_path / "snap")
