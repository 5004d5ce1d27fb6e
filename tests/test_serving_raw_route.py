"""The lean raw-image route answers raw photos itself and leaves every other request to KServe.

The route is driven in-process through a real ASGI client with a real predictor; the
server-level tests run ``python -m serving.server`` and check that raw photos really
take the lean path (KServe's own per-request histograms stay untouched while the
predictor's counters move) and that capture still works on it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from serving.asgi import RawImageRoute, Receive, Scope, Send
from serving.model_version import open_version
from serving.predictor import ProductPredictor
from testkit.serving import Server, kiosk_jpeg, running_server, write_version

EDGE = "raw-route"
LIMIT = 200_000
PHOTO = kiosk_jpeg("LIME-GREEN", 31)


class Behind:
    """The app behind the route (KServe in the server): records what reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"behind"})


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> ProductPredictor:
    settings = Settings(state_dir=tmp_path_factory.mktemp("state"))
    root = write_version(tmp_path_factory.mktemp("model") / "v000001", EDGE, "v000001")
    version = open_version(root, settings)
    predictor = ProductPredictor(version.name, EDGE, settings, lambda: version)
    predictor.load()
    return predictor


def _send(
    predictor: ProductPredictor,
    requests: list[tuple[str, str, bytes | AsyncIterator[bytes], dict[str, str]]],
    registered: bool = True,
) -> tuple[list[httpx.Response], Behind]:
    behind = Behind()
    route = RawImageRoute(behind, predictor, lambda: registered, LIMIT)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=route)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
            return [
                await client.request(method, path, content=body, headers=headers)
                for method, path, body, headers in requests
            ]

    return asyncio.run(run()), behind


def _path(predictor: ProductPredictor) -> str:
    return f"/v1/models/{predictor.name}:predict"


def _count(name: str, model: str) -> float:
    return REGISTRY.get_sample_value(name, {"model": model}) or 0.0


def test_a_raw_jpeg_is_answered_by_the_route_with_the_predictors_answer(predictor: ProductPredictor) -> None:
    before = _count("edgecore_predictions_total", predictor.name)
    (response,), behind = _send(
        predictor, [("POST", _path(predictor), PHOTO, {"content-type": "image/jpeg; charset=binary"})]
    )

    assert response.status_code == 200 and behind.paths == []
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["model_version"] == "v000001"
    assert answer["predictions"][0]["sku"] == "LIME-GREEN"
    assert answer["predictions"][0]["top"][0]["name"] == "Lime"
    assert _count("edgecore_predictions_total", predictor.name) == before + 1


def test_everything_else_goes_on_to_the_app_behind(predictor: ProductPredictor) -> None:
    path = _path(predictor)
    v1_json = json.dumps({"instances": []}).encode()
    responses, behind = _send(
        predictor,
        [
            ("POST", path, v1_json, {"content-type": "application/json"}),
            ("POST", path, PHOTO, {"content-type": "text/plain"}),
            ("POST", path, PHOTO, {}),
            ("POST", "/v1/models/other-products:predict", PHOTO, {"content-type": "image/jpeg"}),
            ("POST", f"/v2/models/{predictor.name}/infer", PHOTO, {"content-type": "image/jpeg"}),
            ("GET", path, b"", {"content-type": "image/jpeg"}),
        ],
    )

    assert [r.status_code for r in responses] == [299] * 6
    assert behind.paths == [
        path,
        path,
        path,
        "/v1/models/other-products:predict",
        f"/v2/models/{predictor.name}/infer",
        path,
    ]


def test_an_unloaded_model_is_left_to_kserve(predictor: ProductPredictor) -> None:
    (response,), behind = _send(
        predictor, [("POST", _path(predictor), PHOTO, {"content-type": "image/jpeg"})], registered=False
    )

    assert response.status_code == 299 and behind.paths == [_path(predictor)]


def test_bad_bodies_get_400_and_413_with_a_reason(predictor: ProductPredictor) -> None:
    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(2 * LIMIT // 65536 + 1):
            yield b"\xff" * 65536

    path = _path(predictor)
    jpeg = {"content-type": "image/jpeg"}
    responses, behind = _send(
        predictor,
        [
            ("POST", path, b"not a photo at all", jpeg),
            ("POST", path, PHOTO[: len(PHOTO) // 3], jpeg),
            ("POST", path, b"", jpeg),
            ("POST", path, b"\xff" * (LIMIT + 1), jpeg),
            ("POST", path, chunked(), jpeg),
            ("POST", path, PHOTO, jpeg),
        ],
    )

    assert [r.status_code for r in responses] == [400, 400, 400, 413, 413, 200]
    reasons = [r.json().get("error", "") for r in responses[:5]]
    assert "not a JPEG or PNG" in reasons[0]
    assert "truncated" in reasons[1]
    assert "empty" in reasons[2]
    assert "exceeds" in reasons[3] and "exceeds" in reasons[4]
    assert behind.paths == []


@pytest.fixture(scope="module")
def unsure_server(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, store: ObjectStore
) -> Iterator[Server]:
    """A real server whose threshold no prediction reaches, so every photo is captured."""
    tmp: Path = tmp_path_factory.mktemp("raw-server")
    edge = f"raw-{uuid.uuid4().hex[:10]}"
    root = write_version(tmp / "v000001", edge, "v000001")
    with running_server(
        settings, edge, tmp / "state", model_uri=str(root), confidence_threshold="1.0"
    ) as srv:
        yield srv


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_server_answers_raw_photos_on_the_lean_route_and_captures_them(
    unsure_server: Server, store: ObjectStore, layout: Layout
) -> None:
    server = unsure_server
    url = f"{server.url}/v1/models/{server.model}:predict"
    request_id = f"req-{uuid.uuid4().hex[:8]}"
    before = httpx.get(f"{server.url}/metrics", timeout=10).text
    raw = httpx.post(
        url, content=PHOTO, headers={"content-type": "image/jpeg", "x-request-id": request_id}, timeout=30
    )
    after_raw = httpx.get(f"{server.url}/metrics", timeout=10).text

    assert raw.status_code == 200
    assert raw.json()["predictions"][0]["recognized"] is False
    kserve_predict = "request_predict_seconds_count"
    assert _sample(after_raw, kserve_predict) == _sample(before, kserve_predict)  # KServe's path not taken
    predictions = "edgecore_predictions_total"
    assert _sample(after_raw, predictions) == _sample(before, predictions) + 1
    assert (
        _sample(after_raw, "edgecore_unrecognized_total")
        == _sample(before, "edgecore_unrecognized_total") + 1
    )

    deadline = time.monotonic() + 30
    records: list[dict[str, Any]] = []
    while not records and time.monotonic() < deadline:
        objects = list(store.list(layout.unrecognized_prefix(server.edge)))
        records = [
            json.loads(store.get_bytes(o.location)) for o in objects if o.location.key.endswith(".json")
        ]
        time.sleep(0.2)
    assert [r["request_id"] for r in records] == [request_id]
    assert records[0]["prediction"]["sku"] == "LIME-GREEN"
