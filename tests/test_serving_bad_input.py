"""Bad input gets a 400 with a reason (413 when too big), and the next request is served.

One table, one real server: each row is sent, its status and reason checked, then a
good photo must still be recognised by the same process.
"""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from PIL import Image

from edgecore.stack import Stack
from foundation.settings import Settings
from testkit.serving import SIZE, Server, b64, kiosk_jpeg, running_server, write_version

LIMIT = 1_000_000
GOOD = kiosk_jpeg("APPLE-RED", 11)


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width``×``height`` pixels (a decompression bomb's calling card)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _tiny_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 0, 0)).save(out, format="JPEG")
    return out.getvalue()


def _v2(datatype: str, shape: list[int], data: list[Any]) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": datatype, "shape": shape, "data": data}]}


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"\xff" * 65536
        sent += 65536


@dataclass(frozen=True)
class Case:
    name: str
    route: str  # "v1" or "v2"
    status: int
    reason: str
    content: bytes | None = None
    content_type: str = "image/jpeg"
    json: dict[str, Any] | None = None
    stream: bool = False
    extra: dict[str, str] = field(default_factory=dict)


CASES = [
    Case("non-image bytes", "v1", 400, "not a JPEG or PNG", content=b"hello, this is not a photo"),
    Case("truncated JPEG", "v1", 400, "truncated", content=GOOD[: len(GOOD) // 3]),
    Case(
        "decompression bomb",
        "v1",
        400,
        "pixel",
        content=_png_declaring(60_000, 60_000),
        content_type="image/png",
    ),
    Case("image too small", "v1", 400, "smaller than", content=_tiny_jpeg()),
    Case("empty raw body", "v1", 400, "empty", content=b""),
    Case(
        "empty JSON body",
        "v1",
        400,
        "Unrecognized request format",
        content=b"",
        content_type="application/json",
    ),
    Case(
        "unsupported content type",
        "v1",
        400,
        "unsupported content type",
        content=GOOD,
        content_type="text/plain",
    ),
    Case("V1 JSON without instances", "v1", 400, "instances", json={"inputs": []}),
    Case(
        "V1 JSON with bad base64", "v1", 400, "base64", json={"instances": [{"image_bytes": {"b64": "@@@"}}]}
    ),
    Case(
        "V1 JSON base64 of text",
        "v1",
        400,
        "not a JPEG or PNG",
        json={"instances": [{"image_bytes": {"b64": b64(b"plain text")}}]},
    ),
    Case(
        "too many images",
        "v1",
        400,
        "at most",
        json={"instances": [{"b64": b64(kiosk_jpeg("LIME-GREEN", 12, size=(80, 64)))}] * 33},
    ),
    Case("V2 wrong dtype", "v2", 400, "datatype INT32", json=_v2("INT32", [1], [1])),
    Case(
        "V2 wrong FP32 shape",
        "v2",
        400,
        "must have shape",
        json=_v2("FP32", [1, 32, 32, 3], [0.5] * 32 * 32 * 3),
    ),
    Case(
        "V2 FP32 data not matching shape",
        "v2",
        400,
        "does not match shape",
        json=_v2("FP32", [1, SIZE, SIZE, 3], [0.5] * 10),
    ),
    Case(
        "V2 FP32 pixels out of range",
        "v2",
        400,
        "[0, 1]",
        json=_v2("FP32", [1, SIZE, SIZE, 3], [255.0] * SIZE * SIZE * 3),
    ),
    Case("V2 BYTES wrong shape", "v2", 400, "shape [N]", json=_v2("BYTES", [1, 2, 2], ["a", "b", "c", "d"])),
    Case("V2 BYTES element not base64 text", "v2", 400, "base64-encoded", json=_v2("BYTES", [1], [5])),
    Case(
        "V2 request missing datatype",
        "v2",
        400,
        "datatype",
        json={"inputs": [{"name": "x", "shape": [1], "data": [1]}]},
    ),
    Case(
        "V2 two inputs",
        "v2",
        400,
        "exactly one input",
        json={"inputs": [_v2("BYTES", [1], [b64(GOOD)])["inputs"][0]] * 2},
    ),
    Case("body over the limit (declared)", "v1", 413, "exceeds", content=b"\xff" * (LIMIT + 1)),
    Case("body over the limit (chunked)", "v1", 413, "exceeds", stream=True),
]


@pytest.fixture(scope="module")
def server(stack: Stack, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server reads its serving pointer from the stack's MinIO."""
    tmp = tmp_path_factory.mktemp("bad-input")
    edge = f"bad-{uuid.uuid4().hex[:10]}"
    root = write_version(tmp / "v000001", edge, "v000001", seed=0)
    with running_server(
        settings, edge, tmp / "state", model_uri=str(root), max_request_bytes=str(LIMIT)
    ) as srv:
        yield srv


def _send(server: Server, case: Case) -> httpx.Response:
    url = (
        f"{server.url}/v1/models/{server.model}:predict"
        if case.route == "v1"
        else f"{server.url}/v2/models/{server.model}/infer"
    )
    if case.json is not None:
        return httpx.post(url, json=case.json, timeout=30)
    content = _chunks(LIMIT * 2) if case.stream else case.content
    return httpx.post(url, content=content, headers={"content-type": case.content_type}, timeout=30)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_rejected_with_a_reason_and_does_not_disturb_the_next_request(
    server: Server, case: Case
) -> None:
    response = _send(server, case)

    assert response.status_code == case.status, response.text
    assert case.reason in response.json()["error"]
    after = httpx.post(
        f"{server.url}/v1/models/{server.model}:predict",
        content=GOOD,
        headers={"content-type": "image/jpeg"},
        timeout=30,
    )
    assert after.status_code == 200
    assert after.json()["predictions"][0]["sku"] == "APPLE-RED"
    assert server.process.poll() is None
