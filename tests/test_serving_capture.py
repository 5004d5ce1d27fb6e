"""Photos flagged unsure are saved to the edge bucket in the background, never blocking a request.

Real MinIO; the predictor runs in-process so the test can wait for the uploader.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from typing import Any

import numpy as np
import pytest
from PIL import Image
from prometheus_client import REGISTRY

from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from serving.capture import Capture, CaptureItem
from serving.model_version import ModelVersion, open_version
from serving.predictor import ProductPredictor
from testkit.serving import kiosk_jpeg, write_version


def _count(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> ModelVersion:
    edge = "capture-edge"
    root = write_version(tmp_path_factory.mktemp("model") / "v000001", edge, "v000001")
    return open_version(root, Settings(state_dir=tmp_path_factory.mktemp("state")))


def _predictor(version: ModelVersion, capture: Capture | None, threshold: float) -> ProductPredictor:
    settings = Settings().updated(serving={"confidence_threshold": threshold})
    predictor = ProductPredictor(version.name, version.catalogue.edge, settings, lambda: version, capture)
    predictor.load()
    return predictor


def _predict(predictor: ProductPredictor, payload: object, headers: dict[str, str]) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        answer = await predictor.predict(await predictor.preprocess(payload, headers), headers)
        assert isinstance(answer, dict)
        return answer

    return asyncio.run(run())


def _captures(store: ObjectStore, layout: Layout, edge: str) -> dict[str, bytes]:
    prefix = layout.unrecognized_prefix(edge)
    return {o.location.key: store.get_bytes(o.location) for o in store.list(prefix)}


def test_a_low_confidence_photo_is_saved_with_its_prediction(
    version: ModelVersion, store: ObjectStore, layout: Layout
) -> None:
    edge = f"cap-{uuid.uuid4().hex[:10]}"  # the bucket the capture writes to; fresh for this test
    capture = Capture(store, layout, edge)
    predictor = _predictor(version, capture, threshold=1.0)  # nothing is confident enough
    photo = kiosk_jpeg("LIME-GREEN", 77)

    answer = _predict(predictor, photo, {"content-type": "image/jpeg", "x-request-id": "req-77"})
    capture.join()
    capture.close()

    assert answer["predictions"][0]["recognized"] is False
    new = _captures(store, layout, edge)
    images = [k for k in new if k.endswith(".jpg")]
    records = [k for k in new if k.endswith(".json")]
    assert len(images) == len(records) == 1
    assert new[images[0]] == photo
    record = json.loads(new[records[0]])
    assert record["request_id"] == "req-77"
    assert record["model_version"] == "v000001"
    assert record["image"] == images[0]
    assert record["prediction"] == answer["predictions"][0]


def test_a_confident_photo_is_not_saved(version: ModelVersion, store: ObjectStore, layout: Layout) -> None:
    edge = f"cap-{uuid.uuid4().hex[:10]}"
    store.ensure_bucket(layout.edge_bucket(edge))
    capture = Capture(store, layout, edge)
    predictor = _predictor(version, capture, threshold=0.0)

    _predict(predictor, kiosk_jpeg("APPLE-RED", 78), {"content-type": "image/jpeg"})
    capture.join()
    capture.close()

    assert _captures(store, layout, edge) == {}


def test_pixels_and_pngs_are_saved_as_jpeg(version: ModelVersion, store: ObjectStore, layout: Layout) -> None:
    edge = f"cap-{uuid.uuid4().hex[:10]}"
    capture = Capture(store, layout, edge)
    png = io.BytesIO()
    Image.open(io.BytesIO(kiosk_jpeg("APPLE-RED", 79))).save(png, format="PNG")
    pixels = np.full((1, 64, 64, 3), 0.25, dtype=np.float32)

    capture.submit(CaptureItem(image=png.getvalue(), pixels=None, record={"n": 1}))
    capture.submit(CaptureItem(image=None, pixels=pixels[0], record={"n": 2}))
    capture.join()
    capture.close()

    saved = _captures(store, layout, edge)
    jpegs = [v for k, v in saved.items() if k.endswith(".jpg")]
    assert len(jpegs) == 2
    assert all(Image.open(io.BytesIO(j)).format == "JPEG" for j in jpegs)


def test_a_full_queue_drops_and_counts_instead_of_blocking(store: ObjectStore, layout: Layout) -> None:
    edge = f"cap-{uuid.uuid4().hex[:10]}"
    capture = Capture(store, layout, edge, max_queue=1)
    dropped, saved, failed = (
        _count("edgecore_capture_dropped_total"),
        _count("edgecore_captures_total"),
        _count("edgecore_capture_failed_total"),
    )
    photo = kiosk_jpeg("APPLE-RED", 80)

    accepted = [capture.submit(CaptureItem(image=photo, pixels=None, record={"i": i})) for i in range(50)]
    capture.join()
    capture.close()

    assert accepted.count(False) == _count("edgecore_capture_dropped_total") - dropped > 0
    assert accepted.count(True) == (_count("edgecore_captures_total") - saved) + (
        _count("edgecore_capture_failed_total") - failed
    )


def test_requests_are_answered_while_the_bucket_is_unreachable(version: ModelVersion, layout: Layout) -> None:
    unreachable = ObjectStore(Settings().updated(s3={"endpoint": "http://127.0.0.1:9"}).s3)
    capture = Capture(unreachable, layout, version.catalogue.edge)
    predictor = _predictor(version, capture, threshold=1.0)
    failed = _count("edgecore_capture_failed_total")

    photos = [kiosk_jpeg("LIME-GREEN", 81 + i) for i in range(3)]

    answers = [_predict(predictor, photo, {"content-type": "image/jpeg"}) for photo in photos]
    capture.join()
    capture.close()

    assert all(a["predictions"][0]["sku"] for a in answers)
    assert _count("edgecore_capture_failed_total") - failed == 3
