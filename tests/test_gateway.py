"""The edge gateway, over real HTTP, storing into a real MinIO edge bucket."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest

from edge_sync.uplink.gateway import create_app
from edge_sync.uplink.outbox import Outbox
from edge_sync.uplink.service import build_gateway
from edgecore.stack import Stack
from foundation.credentials import new_token
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.uplink import free_port, gateway_tokens, image_bytes, serving

EDGE = "store-a"
SKU = "COLA-330"
DEVICE, STAFF = new_token(), new_token()
AS_DEVICE = {"Authorization": f"Bearer {DEVICE}"}
AS_STAFF = {"Authorization": f"Bearer {STAFF}"}


@dataclass
class Edge:
    settings: Settings
    url: str
    store: ObjectStore
    layout: Layout
    outbox: Outbox

    def post_image(
        self, data: bytes, sku: str = SKU, content_type: str = "image/jpeg", token: str | None = DEVICE
    ) -> httpx.Response:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(f"{self.url}/v1/images/{sku}", content=data, headers=headers)

    def staff(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", headers=AS_STAFF, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def edge(stack: Stack, settings: Settings, store: ObjectStore, unique: str, tmp_path: Path) -> Iterator[Edge]:
    cfg = settings.updated(
        state_dir=tmp_path,
        buckets={"edge_prefix": f"t{unique}-"},
        uplink={"max_image_bytes": 60_000},
        images={"max_pixels": 1_000_000},
    )
    gateway_tokens(cfg, EDGE, devices={"camera-1": DEVICE}, staff={"manager": STAFF})
    gateway = build_gateway(cfg, EDGE)
    outbox = gateway.outbox
    with serving(create_app(gateway), free_port()) as url:
        yield Edge(cfg, url, store, Layout(cfg.buckets), outbox)
    outbox.close()


def test_an_accepted_image_is_stored_in_the_edge_bucket_under_its_sha256(edge: Edge) -> None:
    data = image_bytes(1)

    response = edge.post_image(data)

    assert response.status_code == 201, response.text
    sha = hashlib.sha256(data).hexdigest()
    assert response.json()["image_id"] == sha
    assert edge.store.get_bytes(edge.layout.incoming_image(EDGE, SKU, sha, "jpg"), sha) == data


def test_posting_the_same_image_twice_stores_it_once(edge: Edge) -> None:
    data = image_bytes(2, "PNG")
    first = edge.post_image(data, content_type="image/png")
    second = edge.post_image(data, content_type="image/png")

    assert (first.status_code, second.status_code) == (201, 200)
    assert len(list(edge.store.list(edge.layout.incoming_prefix(EDGE, SKU)))) == 1


def test_completing_a_sku_puts_its_new_images_in_one_outbox_set(edge: Edge) -> None:
    for seed in (3, 4, 5):
        edge.post_image(image_bytes(seed))
    edge.post_image(image_bytes(6), sku="CHIPS-200")

    response = edge.staff("POST", f"/v1/sets/{SKU}/complete")
    again = edge.staff("POST", f"/v1/sets/{SKU}/complete")

    assert response.status_code == 202 and response.json()["images"] == 3
    assert again.status_code == 409
    set_id = response.json()["set_id"]
    assert {i.sku for i in edge.outbox.items(set_id)} == {SKU}
    pending = edge.staff("GET", "/v1/pending").json()
    assert pending["not_in_a_set"] == {"CHIPS-200": 1}
    assert [s["set_id"] for s in pending["sets"]] == [set_id]


def test_a_labelled_capture_becomes_a_hard_example(edge: Edge) -> None:
    capture, _ = edge.layout.unrecognized(EDGE, date(2026, 11, 23), "cap-1")
    data = image_bytes(7)
    edge.store.put_bytes(capture, data, "image/jpeg")

    response = edge.staff(
        "POST", "/v1/hard-examples", json={"day": "2026-11-23", "capture_id": "cap-1", "sku": SKU}
    )

    assert response.status_code == 201, response.text
    assert edge.store.get_bytes(edge.layout.hard_example(EDGE, SKU, "cap-1", "jpg")) == data
    assert edge.staff("GET", "/v1/pending").json()["hard_examples"] == 1


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG header that declares a huge image (a decompression bomb) with almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _truncated_jpeg() -> bytes:
    data = image_bytes(8, side=200)
    return data[: len(data) // 2]


def _too_big() -> bytes:
    buf = io.BytesIO(image_bytes(9, "PNG", side=160))
    return buf.getvalue()  # about 77 kB of noise: over the 60 kB limit


BAD_IMAGES: dict[str, tuple[int, Callable[[], tuple[str, bytes, str]]]] = {
    "no content type": (415, lambda: (SKU, image_bytes(10), "")),
    "not an image content type": (415, lambda: (SKU, image_bytes(10), "text/plain")),
    "png posted as jpeg": (415, lambda: (SKU, image_bytes(11, "PNG"), "image/jpeg")),
    "not an image at all": (400, lambda: (SKU, b"GIF89a" + b"\0" * 200, "image/jpeg")),
    "empty body": (400, lambda: (SKU, b"", "image/jpeg")),
    "truncated jpeg": (400, lambda: (SKU, _truncated_jpeg(), "image/jpeg")),
    "too small to be a photo": (400, lambda: (SKU, image_bytes(12, side=16), "image/jpeg")),
    "decompression bomb": (400, lambda: (SKU, _png_declaring(50_000, 50_000), "image/png")),
    "over the size limit": (413, lambda: (SKU, _too_big(), "image/png")),
    "lowercase sku": (400, lambda: ("cola-330", image_bytes(13), "image/jpeg")),
    "sku too short": (400, lambda: ("AB", image_bytes(13), "image/jpeg")),
    "sku with dots": (400, lambda: ("COLA..330", image_bytes(13), "image/jpeg")),
    "sku with an encoded slash": (404, lambda: ("COLA%2F330", image_bytes(13), "image/jpeg")),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES), ids=list(BAD_IMAGES))
def test_a_bad_image_is_refused_with_its_status_and_nothing_is_stored(edge: Edge, case: str) -> None:
    status, build = BAD_IMAGES[case]
    sku, body, content_type = build()

    response = edge.post_image(body, sku, content_type)

    assert response.status_code == status, response.text
    assert response.json()["reason"]
    assert list(edge.store.list(edge.layout.incoming_prefix(EDGE))) == []


BAD_LABELS = {
    "not json": (400, "application/json", b"{nope"),
    "missing sku": (400, "application/json", b'{"day": "2026-11-23", "capture_id": "cap-1"}'),
    "bad day": (400, "application/json", b'{"day": "yesterday", "capture_id": "cap-1", "sku": "COLA-330"}'),
    "bad capture id": (
        400,
        "application/json",
        b'{"day": "2026-11-23", "capture_id": "../x", "sku": "COLA-330"}',
    ),
    "unknown capture": (
        404,
        "application/json",
        b'{"day": "2026-11-23", "capture_id": "cap-9", "sku": "COLA-330"}',
    ),
    "form content type": (415, "application/x-www-form-urlencoded", b"sku=COLA-330"),
    "oversize label": (413, "application/json", b'{"pad": "' + b"x" * 5000 + b'"}'),
}


@pytest.mark.parametrize("case", list(BAD_LABELS), ids=list(BAD_LABELS))
def test_a_bad_hard_example_label_is_refused_with_its_status(edge: Edge, case: str) -> None:
    status, content_type, body = BAD_LABELS[case]

    response = httpx.post(
        f"{edge.url}/v1/hard-examples", content=body, headers={"Content-Type": content_type, **AS_STAFF}
    )

    assert response.status_code == status, response.text
    assert list(edge.store.list(edge.layout.hard_examples_prefix(EDGE))) == []


def test_completing_a_sku_with_no_images_is_a_conflict(edge: Edge) -> None:
    response = edge.staff("POST", f"/v1/sets/{SKU}/complete")

    assert response.status_code == 409 and "no new images" in response.json()["reason"]


@pytest.mark.parametrize("token", [None, "an-unknown-token"], ids=["no token", "an unknown token"])
def test_an_image_from_an_unknown_caller_is_refused_and_not_stored(edge: Edge, token: str | None) -> None:
    response = edge.post_image(image_bytes(20), token=token)

    assert response.status_code == 401
    assert list(edge.store.list(edge.layout.incoming_prefix(EDGE))) == []


def test_a_device_may_post_images_but_only_staff_complete_sets_and_read_what_is_pending(edge: Edge) -> None:
    assert edge.post_image(image_bytes(21)).status_code == 201

    as_device = httpx.post(f"{edge.url}/v1/sets/{SKU}/complete", headers=AS_DEVICE)
    pending = httpx.get(f"{edge.url}/v1/pending", headers=AS_DEVICE)

    assert (as_device.status_code, pending.status_code) == (403, 403)
    assert edge.outbox.sets() == []
