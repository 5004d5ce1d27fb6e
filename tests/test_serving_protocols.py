"""The edge predictor answers each protocol, spoken by a real client, over real HTTP.

The server is ``python -m serving.server`` in a subprocess; its model version is
published to a real MinIO edge bucket and fetched with KServe's ``kserve_storage``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from kserve import InferenceRESTClient, InferInput, InferRequest, InferResponse, RESTConfig

from edge_sync.delivery.targets.counters import read_counters
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.serving import (
    LABELS,
    SIZE,
    Server,
    b64,
    image_pixels,
    kiosk_jpeg,
    publish_to_edge,
    running_server,
)


@pytest.fixture(scope="module")
def server(
    settings: Settings, store: ObjectStore, layout: Layout, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("protocols")
    edge = f"proto-{uuid.uuid4().hex[:10]}"
    uri = publish_to_edge(store, layout, tmp, edge, "v000001", seed=0)
    with running_server(settings, edge, tmp / "state", model_uri=uri) as srv:
        yield srv


def _client(protocol: str) -> InferenceRESTClient:
    return InferenceRESTClient(RESTConfig(protocol=protocol, retries=0, timeout=30))


def test_kserve_rest_client_v1_gets_the_sku_with_catalogue_data_and_version(server: Server) -> None:
    async def call() -> dict[str, Any]:
        async with _client("v1") as client:
            body = {"instances": [{"image_bytes": {"b64": b64(kiosk_jpeg("APPLE-RED", 1))}}]}
            answer: dict[str, Any] = await client.infer(server.url, body, model_name=server.model)
            return answer

    answer = asyncio.run(call())

    assert answer["model_version"] == "v000001"
    prediction = answer["predictions"][0]
    assert prediction["sku"] == "APPLE-RED"
    assert prediction["top"][0] == {
        "sku": "APPLE-RED",
        "probability": prediction["confidence"],
        "name": "Red apple",
        "price": "0.45",
        "currency": "EUR",
        "promotion": "3 for 1.20",
    }
    assert [t["sku"] for t in prediction["top"]] == sorted(
        LABELS, key=lambda s: -next(t["probability"] for t in prediction["top"] if t["sku"] == s)
    )


def test_kserve_rest_client_v2_bytes_tensor_of_two_images(server: Server) -> None:
    images = [kiosk_jpeg("LIME-GREEN", 2), kiosk_jpeg("BLUEBERRY-BOX", 3)]
    request = InferRequest(
        model_name=server.model,
        infer_inputs=[InferInput("image", [2], "BYTES", [b64(i) for i in images])],
    )

    async def call() -> InferResponse:
        async with _client("v2") as client:
            return await client.infer(server.url, request, model_name=server.model)

    response = asyncio.run(call())

    assert response.parameters["model_version"] == "v000001"  # kserve's client drops the top-level field
    skus = response.get_output_by_name("sku").as_numpy()
    probs = response.get_output_by_name("probability").as_numpy()
    assert skus.shape == (2, 3)
    assert [s.decode() if isinstance(s, bytes) else s for s in skus[:, 0]] == ["LIME-GREEN", "BLUEBERRY-BOX"]
    assert np.all(np.diff(probs, axis=1) <= 0)
    product = json.loads(response.get_output_by_name("product").as_numpy()[0, 0])
    assert product == {"name": "Lime", "price": "0.30", "currency": "EUR", "promotion": None}


def test_kserve_rest_client_v2_fp32_pixel_tensor_in_binary_form(server: Server) -> None:
    pixels = image_pixels(kiosk_jpeg("BLUEBERRY-BOX", 4))[None]
    tensor = InferInput("pixels", [1, SIZE, SIZE, 3], "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=True)
    request = InferRequest(model_name=server.model, infer_inputs=[tensor])

    async def call() -> InferResponse:
        async with _client("v2") as client:
            return await client.infer(server.url, request, model_name=server.model)

    response = asyncio.run(call())

    sku = response.get_output_by_name("sku").as_numpy()[0, 0]
    assert (sku.decode() if isinstance(sku, bytes) else sku) == "BLUEBERRY-BOX"


def test_plain_http_open_inference_protocol_json(server: Server) -> None:
    body = {
        "id": "kiosk-42",
        "inputs": [
            {"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(kiosk_jpeg("APPLE-RED", 5))]}
        ],
    }
    response = httpx.post(f"{server.url}/v2/models/{server.model}/infer", json=body, timeout=30)

    assert response.status_code == 200
    answer = response.json()
    assert answer["id"] == "kiosk-42"
    assert answer["model_name"] == server.model
    assert answer["model_version"] == "v000001"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["sku"]["datatype"] == "BYTES" and outputs["sku"]["shape"] == [1, 3]
    assert outputs["sku"]["data"][0] == "APPLE-RED"
    assert outputs["probability"]["datatype"] == "FP32"


def test_plain_http_model_metadata_and_readiness(server: Server) -> None:
    ready = httpx.get(f"{server.url}/v2/models/{server.model}/ready", timeout=10)
    live = httpx.get(f"{server.url}/v2/health/live", timeout=10)

    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert live.json()["live"] is True


def test_raw_jpeg_upload(server: Server) -> None:
    response = httpx.post(
        f"{server.url}/v1/models/{server.model}:predict",
        content=kiosk_jpeg("LIME-GREEN", 6),
        headers={"content-type": "image/jpeg"},
        timeout=30,
    )

    assert response.status_code == 200
    assert response.json()["predictions"][0]["sku"] == "LIME-GREEN"


def test_raw_png_upload(server: Server, tmp_path: Path) -> None:
    from PIL import Image

    png = tmp_path / "photo.png"
    Image.open(__import__("io").BytesIO(kiosk_jpeg("APPLE-RED", 7))).save(png)
    response = httpx.post(
        f"{server.url}/v1/models/{server.model}:predict",
        content=png.read_bytes(),
        headers={"content-type": "image/png"},
        timeout=30,
    )

    assert response.status_code == 200
    assert response.json()["predictions"][0]["sku"] == "APPLE-RED"


def test_metrics_expose_latency_confidence_unrecognized_and_version(server: Server) -> None:
    httpx.post(
        f"{server.url}/v1/models/{server.model}:predict",
        content=kiosk_jpeg("APPLE-RED", 8),
        headers={"content-type": "image/jpeg"},
        timeout=30,
    )
    text = httpx.get(f"{server.url}/metrics", timeout=10).text

    assert f'edgecore_inference_seconds_count{{model="{server.model}"}}' in text
    assert f'edgecore_prediction_confidence_count{{model="{server.model}"}}' in text
    assert f'edgecore_predictions_total{{model="{server.model}"}}' in text
    assert f'edgecore_unrecognized_total{{model="{server.model}"}}' in text
    assert f'edgecore_serving_model_version{{model="{server.model}",version="v000001"}} 1.0' in text


def test_the_counters_a_rollout_wave_is_judged_by_are_read_from_the_server_s_metrics(server: Server) -> None:
    with httpx.Client() as http:
        before = read_counters(http, f"{server.url}/metrics", server.model, 10)
        httpx.post(
            f"{server.url}/v1/models/{server.model}:predict",
            content=kiosk_jpeg("APPLE-RED", 9),
            headers={"content-type": "image/jpeg"},
            timeout=30,
        )
        after = read_counters(http, f"{server.url}/metrics", server.model, 10)

    assert before is not None and after is not None
    seen = after.since(before)
    assert (seen.predictions, seen.errors) == (1.0, 0.0) and seen.unsure in (0.0, 1.0)
