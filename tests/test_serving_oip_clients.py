"""Stock Open Inference Protocol clients work against the edge predictor as they come.

tritonclient 2.x is what most OIP users already have: it sends a JPEG as a ``BYTES``
tensor in binary form (the protocol's binary-data extension) or as base64 text in JSON,
discovers tensor names from the model's metadata, and may address one version.  The
server runs as ``serving.server`` does in production, serving the edge's newest
delivered version (no model URI given).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.serving import LABELS, Server, b64, kiosk_jpeg, publish_to_edge, running_server

VERSION = "v000001"


@pytest.fixture(scope="module")
def server(
    settings: Settings, store: ObjectStore, layout: Layout, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("oip")
    edge = f"oip-{uuid.uuid4().hex[:10]}"
    publish_to_edge(store, layout, tmp, edge, VERSION, seed=0)
    with running_server(settings, edge, tmp / "state") as srv:
        yield srv


@pytest.fixture
def client(server: Server) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=60)
    yield c
    c.close()


def _jpegs(*skus: str) -> np.ndarray:
    return np.array([kiosk_jpeg(sku, 40 + i) for i, sku in enumerate(skus)], dtype=np.object_)


def _answer(result: triton.InferResult, n: int) -> tuple[list[str], list[bool]]:
    skus = result.as_numpy("sku")
    recognized = result.as_numpy("recognized")
    assert skus is not None and recognized is not None
    top = [s.decode() if isinstance(s, bytes) else str(s) for s in skus.reshape(n, -1)[:, 0]]  # JSON: str
    return top, [bool(r) for r in recognized]


def test_a_jpeg_sent_as_a_binary_bytes_tensor_is_answered(
    server: Server, client: triton.InferenceServerClient
) -> None:
    tensor = triton.InferInput("image", [2], "BYTES")
    tensor.set_data_from_numpy(_jpegs("APPLE-RED", "LIME-GREEN"), binary_data=True)

    result = client.infer(server.model, [tensor])

    skus, _ = _answer(result, 2)
    assert skus == ["APPLE-RED", "LIME-GREEN"]


def test_base64_text_in_a_json_bytes_tensor_is_answered(
    server: Server, client: triton.InferenceServerClient
) -> None:
    tensor = triton.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(
        np.array([b64(kiosk_jpeg("BLUEBERRY-BOX", 3)).encode()], dtype=np.object_), binary_data=False
    )
    wanted = [triton.InferRequestedOutput(name, binary_data=False) for name in ("sku", "recognized")]

    result = client.infer(server.model, [tensor], outputs=wanted)

    assert _answer(result, 1)[0] == ["BLUEBERRY-BOX"]


def test_the_metadata_names_every_input_and_output_with_datatype_and_shape(
    server: Server, client: triton.InferenceServerClient
) -> None:
    metadata = client.get_model_metadata(server.model)

    inputs = {t["name"]: (t["datatype"], t["shape"]) for t in metadata["inputs"]}
    outputs = {t["name"]: (t["datatype"], t["shape"]) for t in metadata["outputs"]}
    assert inputs["image"] == ("BYTES", [-1])
    assert set(outputs) == {"sku", "probability", "product", "recognized"}
    assert outputs["sku"] == ("BYTES", [-1, len(LABELS)])


def test_the_served_version_answers_on_its_versioned_routes_and_another_is_not_found(
    server: Server, client: triton.InferenceServerClient
) -> None:
    tensor = triton.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(_jpegs("LIME-GREEN"), binary_data=True)

    assert client.is_model_ready(server.model, model_version=VERSION)
    assert not client.is_model_ready(server.model, model_version="v000099")
    assert client.get_model_metadata(server.model, model_version=VERSION)["name"] == server.model
    assert _answer(client.infer(server.model, [tensor], model_version=VERSION), 1)[0] == ["LIME-GREEN"]
    with pytest.raises(InferenceServerException, match="not served"):
        client.infer(server.model, [tensor], model_version="v000099")


def test_a_broken_image_is_refused_with_a_short_reason_that_never_echoes_it(server: Server) -> None:
    garbage = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4000  # a JPEG header, then a megabyte of noise
    tensor = triton.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([garbage], dtype=np.object_), binary_data=True)
    body, json_length = triton.InferenceServerClient.generate_request_body([tensor])

    response = httpx.post(
        f"{server.url}/v2/models/{server.model}/infer",
        content=body,
        headers={"Inference-Header-Content-Length": str(json_length)},
        timeout=30,
    )

    assert response.status_code == 400
    assert len(response.content) < 1000 and b"\x00\x01\x02\x03" not in response.content


def test_json_without_a_content_type_is_read_as_json(server: Server) -> None:
    body = {
        "inputs": [
            {"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(kiosk_jpeg("APPLE-RED", 9))]}
        ]
    }
    import orjson

    response = httpx.post(
        f"{server.url}/v2/models/{server.model}/infer", content=orjson.dumps(body), timeout=30
    )

    assert response.status_code == 200
    assert response.json()["outputs"][0]["data"][0] == "APPLE-RED"
