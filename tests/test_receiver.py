"""The core receiver, against the real MinIO and Kafka, over real HTTP."""

from __future__ import annotations

import socket
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer

from edge_sync.uplink.archive import (
    DIGEST_HEADER,
    END_OF_ARCHIVE,
    dataset_path,
    member_header,
    padding,
    set_digest,
)
from edge_sync.uplink.receiver import create_app
from edge_sync.uplink.service import build_receiver
from edgecore.stack import Stack
from foundation import events
from foundation.layout import Layout, Location
from foundation.manifest import Manifest
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.uplink import free_port, image_bytes, regular, serving, special, tar_bytes

EDGE = "store-a"
OTHER = "store-b"
TOKENS = {EDGE: "token-of-store-a-0123456789", OTHER: "token-of-store-b-0123456789"}


@dataclass
class Core:
    settings: Settings
    url: str
    store: ObjectStore
    layout: Layout

    def post(
        self,
        body: bytes,
        digest: str | None,
        token: str | None = TOKENS[EDGE],
        edge: str = EDGE,
        content_type: str = "application/x-tar",
    ) -> httpx.Response:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if digest is not None:
            headers[DIGEST_HEADER] = digest
        return httpx.post(f"{self.url}/v1/edges/{edge}/sets", content=body, headers=headers, timeout=60)

    def keys(self) -> list[str]:
        return [o.location.key for o in self.store.list(self.layout.datasets_prefix(EDGE))]

    def manifests(self) -> list[str]:
        return [k for k in self.keys() if k.endswith("/manifest.json")]


@pytest.fixture
def core(stack: Stack, settings: Settings, store: ObjectStore, unique: str) -> Iterator[Core]:
    cfg = settings.updated(
        buckets={"training": f"test-train-{unique}"},
        kafka={"topic_training_data_ready": f"test-tdr-{unique}"},
        uplink={"edge_tokens": {}, "max_set_members": 5, "max_member_bytes": 20_000, "max_set_bytes": 60_000},
    )
    ensure_topics(cfg.kafka)
    producer = EventProducer(cfg.kafka, "edgecore/test-receiver")
    receiver = build_receiver(cfg, dict(TOKENS), producer)
    with serving(create_app(receiver), free_port()) as url:
        yield Core(cfg, url, store, Layout(cfg.buckets))
    receiver.close()
    producer.close()


def a_set(seeds: list[int], sku: str = "COLA-330") -> tuple[bytes, str, list[bytes]]:
    images = [image_bytes(s) for s in seeds]
    parts = []
    for i, data in enumerate(images):
        parts += [member_header(f"{sku}/img-{i}.jpg", len(data)), data, padding(len(data))]
    import hashlib

    digest = set_digest(dataset_path(sku, hashlib.sha256(d).hexdigest(), "jpg") for d in images)
    return b"".join([*parts, END_OF_ARCHIVE]), digest, images


def test_a_set_becomes_a_new_dataset_version_with_its_manifest_and_event(core: Core, tmp_path: Path) -> None:
    body, digest, images = a_set([1, 2, 3])

    response = core.post(body, digest)

    assert response.status_code == 201, response.text
    assert response.json()["version"] == "v000001" and response.json()["objects"] == 3
    raw = core.store.get_bytes(core.layout.dataset_manifest(EDGE, "v000001"))
    manifest = Manifest.from_bytes(raw, "test")
    assert manifest.kind == "dataset" and manifest.labels == ["COLA-330"]
    # one tar shard holds the set: each image is at the offset the manifest gives, named by its path
    shards = {entry.shard for entry in manifest.files.values()}
    assert len(shards) == 1 and None not in shards
    shard = core.layout.dataset_shard(EDGE, str(shards.pop()))
    for path, entry in manifest.files.items():
        assert entry.offset is not None
        core.store.download_range(shard, entry.offset, entry.size, tmp_path / path, entry.sha256)
        assert (tmp_path / path).read_bytes() in images
    core.store.download(shard, tmp_path / "shard.tar")
    with tarfile.open(tmp_path / "shard.tar") as tar:
        assert sorted(tar.getnames()) == sorted(manifest.files)
    stored = core.keys()
    assert sorted(k.rsplit("/", 1)[1] for k in stored) == sorted(
        ["manifest.json", shard.key.rsplit("/", 1)[1]]
    )
    consumer = KafkaConsumer(
        core.settings.kafka.topic_training_data_ready,
        bootstrap_servers=core.settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=15_000,
    )
    record = next(iter(consumer))
    consumer.close()
    event = events.parse(record.value, record.key).data
    assert isinstance(event, events.TrainingDataReady)
    assert (event.dataset, event.version, event.object_count) == (EDGE, "v000001", 3)
    import hashlib

    assert event.manifest_sha256 == hashlib.sha256(raw).hexdigest()


def test_a_retransmitted_set_creates_no_second_version(core: Core) -> None:
    body, digest, _ = a_set([4, 5])
    first = core.post(body, digest)

    again = core.post(body, digest)

    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["version"] == first.json()["version"]
    assert core.manifests() == [f"datasets/{EDGE}/v000001/manifest.json"]


def test_concurrent_sets_get_distinct_versions(core: Core) -> None:
    bodies = [a_set([10 + i, 20 + i]) for i in range(4)]
    results: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda b=b: results.append(core.post(b[0], b[1]))) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(r.status_code for r in results) == [201] * 4
    assert sorted(r.json()["version"] for r in results) == [f"v00000{i}" for i in range(1, 5)]
    assert len(core.manifests()) == 4


def test_the_dataset_lookup_finds_a_shipped_set_only(core: Core) -> None:
    body, digest, _ = a_set([30])
    headers = {"Authorization": f"Bearer {TOKENS[EDGE]}"}
    before = httpx.get(f"{core.url}/v1/edges/{EDGE}/sets/{digest}", headers=headers)
    core.post(body, digest)
    after = httpx.get(f"{core.url}/v1/edges/{EDGE}/sets/{digest}", headers=headers)

    assert before.status_code == 404
    assert after.status_code == 200 and after.json()["version"] == "v000001"


# -- bad input: every case gets its 4xx and a reason, and no dataset version ------------
def _good() -> tuple[bytes, str | None]:
    body, digest, _ = a_set([40, 41])
    return body, digest


def _bomb_header(size: int) -> bytes:
    info = tarfile.TarInfo("COLA-330/big.jpg")
    info.size = size
    return info.tobuf(format=tarfile.USTAR_FORMAT) + END_OF_ARCHIVE


JPEG = image_bytes(50)


@dataclass(frozen=True)
class Bad:
    """One bad request: its expected status, its body and declared digest, and its headers."""

    status: int
    body: Callable[[], tuple[bytes, str | None]]
    token: str | None = TOKENS[EDGE]
    content_type: str = "application/x-tar"


def _members(*members: tuple[tarfile.TarInfo, bytes | None]) -> Callable[[], tuple[bytes, str | None]]:
    return lambda: (tar_bytes(list(members)), "a" * 64)


BAD_INPUTS = {
    "no token": Bad(401, _good, token=None),
    "unknown token": Bad(401, _good, token="not-a-token-of-anyone-000"),
    "another edge's prefix": Bad(403, _good, token=TOKENS[OTHER]),
    "not a tar content type": Bad(415, _good, content_type="application/zip"),
    "missing set digest": Bad(400, lambda: (_good()[0], None)),
    "path traversal": Bad(400, _members(regular("../COLA-330/x.jpg", JPEG))),
    "traversal inside": Bad(400, _members(regular("COLA-330/../../etc/x.jpg", JPEG))),
    "absolute path": Bad(400, _members(regular("/COLA-330/x.jpg", JPEG))),
    "nested folders": Bad(400, _members(regular("COLA-330/a/x.jpg", JPEG))),
    "bad SKU": Bad(400, _members(regular("cola/x.jpg", JPEG))),
    "symbolic link": Bad(400, _members(special("COLA-330/x.jpg", tarfile.SYMTYPE, "/etc/passwd"))),
    "hard link": Bad(400, _members(special("COLA-330/x.jpg", tarfile.LNKTYPE, "COLA-330/y.jpg"))),
    "character device": Bad(400, _members(special("COLA-330/x.jpg", tarfile.CHRTYPE))),
    "block device": Bad(400, _members(special("COLA-330/x.jpg", tarfile.BLKTYPE))),
    "fifo": Bad(400, _members(special("COLA-330/x.jpg", tarfile.FIFOTYPE))),
    "non-image member": Bad(415, _members(regular("COLA-330/notes.txt", b"hello"))),
    "image name, not image bytes": Bad(400, _members(regular("COLA-330/x.jpg", b"MZ" + b"\0" * 100))),
    "png bytes named jpg": Bad(415, _members(regular("COLA-330/x.jpg", image_bytes(51, "PNG")))),
    "jpeg cut after its header": Bad(400, _members(regular("COLA-330/x.jpg", JPEG[: len(JPEG) // 2]))),
    "png cut short": Bad(400, _members(regular("COLA-330/x.png", image_bytes(52, "PNG")[:-20]))),
    "oversize member": Bad(413, _members(regular("COLA-330/x.jpg", JPEG + b"\0" * 20_000))),
    "declares 8 GiB": Bad(413, lambda: (_bomb_header(8 * 2**30 - 1), "a" * 64)),
    "too many members": Bad(
        413, _members(*(regular(f"COLA-330/x{i}.jpg", image_bytes(60 + i)) for i in range(6)))
    ),
    "total size bomb": Bad(
        413, _members(*(regular(f"COLA-330/x{i}.png", image_bytes(70 + i, "PNG", 72)) for i in range(4)))
    ),
    "not a tar": Bad(400, lambda: (b"PK\x03\x04" + b"x" * 2000, "a" * 64)),
    "truncated": Bad(400, lambda: (a_set([80])[0][:700], a_set([80])[1])),
    "empty archive": Bad(400, lambda: (END_OF_ARCHIVE, "a" * 64)),
    "digest does not match the images": Bad(400, lambda: (a_set([81])[0], "b" * 64)),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_refused_with_its_status_and_creates_no_version(core: Core, case: str) -> None:
    bad = BAD_INPUTS[case]
    body, digest = bad.body()

    response = core.post(body, digest, token=bad.token, content_type=bad.content_type)

    assert response.status_code == bad.status, response.text
    assert response.json()["reason"]
    assert core.manifests() == []
    everything = [o.location.key for o in core.store.list(Location(core.layout.training_bucket, ""))]
    assert all(
        k.startswith((f"datasets/{EDGE}/", f"claims/datasets/{EDGE}/", f"claims/sets/{EDGE}/"))
        for k in everything
    ), everything
    assert core.keys() == [], "a refused set leaves no shard"
    assert list(core.store.list(core.layout.dataset_claims_prefix(EDGE))) == [], "and claims no version"
    uploads = core.store.client.list_multipart_uploads(Bucket=core.layout.training_bucket)
    assert uploads.get("Uploads", []) == [], "a refused set leaves no multipart upload behind"


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(core: Core) -> None:
    host, port = core.url.removeprefix("http://").split(":")
    request = (
        f"POST /v1/edges/{EDGE}/sets HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKENS[EDGE]}\r\n"
        f"Content-Type: application/x-tar\r\n{DIGEST_HEADER}: {'a' * 64}\r\n"
        "Content-Length: 10000000000\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request + b"\0" * 4096)
        head = sock.recv(65536).decode(errors="replace")

    assert head.startswith("HTTP/1.1 413"), head
    assert core.manifests() == []


def test_a_set_refused_at_its_first_member_gets_its_answer_while_the_rest_still_streams(core: Core) -> None:
    link = tar_bytes([special("COLA-330/x.jpg", tarfile.SYMTYPE, "/etc/passwd")])[:512]  # its header
    chunks = [link] + [b"\0" * 65_536] * 14  # about 900 kB behind the refused header

    response = httpx.post(
        f"{core.url}/v1/edges/{EDGE}/sets",
        content=iter(chunks),
        headers={
            "Authorization": f"Bearer {TOKENS[EDGE]}",
            "Content-Type": "application/x-tar",
            DIGEST_HEADER: "a" * 64,
        },
        timeout=60,
    )

    assert response.status_code == 400 and "symbolic link" in response.json()["reason"]


def test_versions_are_numbered_in_the_order_their_sets_became_complete(core: Core) -> None:
    refused = core.post(a_set([93])[0], "c" * 64)  # wrong digest: refused after streaming
    first, second = core.post(*a_set([94])[:2]), core.post(*a_set([95, 96])[:2])

    assert refused.status_code == 400
    assert [first.json()["version"], second.json()["version"]] == ["v000001", "v000002"]


def test_a_set_whose_first_transfer_broke_off_is_finished_in_the_same_version(core: Core) -> None:
    body, digest, _ = a_set([90, 91, 92])
    broken = core.post(body[: len(body) // 2], digest)

    complete = core.post(body, digest)

    assert broken.status_code == 400 and "truncated" in broken.json()["reason"]
    assert complete.status_code == 201 and complete.json()["version"] == "v000001"
    claims = core.store.list(core.layout.dataset_claims_prefix(EDGE))
    assert [o.location.key.rsplit("/", 1)[1] for o in claims] == ["v000001.json"]
