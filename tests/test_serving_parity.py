"""Training and serving feed the model the very same tensor for the same photo.

The training side is the real ``components.prepare.prepare`` step run on a dataset
folder; the serving side is the predictor's ``preprocess`` for each request shape that
carries an encoded image (raw body, V1 base64, V2 BYTES).  Equality is bit for bit.
"""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
from kserve import InferInput, InferRequest
from PIL import Image

from components.ingest import IMAGES_DIR
from components.prepare import SPLITS, PreparedData, prepare
from foundation.layout import CATALOGUE_FILE
from foundation.settings import Settings
from serving.model_version import open_version
from serving.predictor import ProductPredictor
from testkit.serving import LABELS, b64, catalogue, kiosk_jpeg, write_version

EDGE = "parity"
Photos = tuple[dict[str, bytes], dict[str, np.ndarray]]


def _png(jpeg: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> ProductPredictor:
    settings = Settings(state_dir=tmp_path_factory.mktemp("state"))
    root = write_version(tmp_path_factory.mktemp("model") / "v000001", EDGE, "v000001")
    version = open_version(root, settings)
    predictor = ProductPredictor(version.name, EDGE, settings, lambda: version)
    predictor.load()
    return predictor


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Photos:
    """Photos by dataset file name, and the tensor prepare produced for each."""
    dataset = tmp_path_factory.mktemp("dataset")
    (dataset / CATALOGUE_FILE).write_bytes(catalogue(EDGE).to_bytes())
    originals: dict[str, bytes] = {}
    for label in LABELS:
        folder = dataset / IMAGES_DIR / label
        folder.mkdir(parents=True)
        for i in range(4):
            data = kiosk_jpeg(label, 500 + i) if i % 2 == 0 else _png(kiosk_jpeg(label, 500 + i))
            name = f"{label}/photo-{i}.{'jpg' if i % 2 == 0 else 'png'}"
            (dataset / IMAGES_DIR / name).write_bytes(data)
            originals[name] = data
    out = tmp_path_factory.mktemp("prepared")
    prepare(dataset, out, image_size=64)
    prepared = PreparedData(out)
    tensors = {}
    for split in SPLITS:
        part = prepared.split(split)
        tensors.update(dict(zip(part.files, part.x, strict=True)))
    assert json.loads((out / "report.json").read_text())["kept"] == len(originals)
    return originals, tensors


def _served(predictor: ProductPredictor, payload: object, headers: dict[str, str]) -> np.ndarray:
    return asyncio.run(predictor.preprocess(payload, headers)).pixels


def test_raw_upload_tensor_equals_the_prepare_tensor(predictor: ProductPredictor, photos: Photos) -> None:
    originals, tensors = photos
    for name, data in originals.items():
        kind = "image/jpeg" if name.endswith(".jpg") else "image/png"
        served = _served(predictor, data, {"content-type": kind})
        assert served.dtype == tensors[name].dtype == np.float32
        assert np.array_equal(served[0], tensors[name]), name


def test_v1_base64_tensor_equals_the_prepare_tensor(predictor: ProductPredictor, photos: Photos) -> None:
    originals, tensors = photos
    names = sorted(originals)
    body = {"instances": [{"image_bytes": {"b64": b64(originals[n])}} for n in names]}

    served = _served(predictor, body, {"content-type": "application/json"})

    assert np.array_equal(served, np.stack([tensors[n] for n in names]))


def test_v2_bytes_tensor_equals_the_prepare_tensor(predictor: ProductPredictor, photos: Photos) -> None:
    originals, tensors = photos
    names = sorted(originals)
    request = InferRequest(
        model_name=predictor.name,
        infer_inputs=[InferInput("image", [len(names)], "BYTES", [b64(originals[n]) for n in names])],
    )

    served = _served(predictor, request, {})

    assert np.array_equal(served, np.stack([tensors[n] for n in names]))


def test_v2_fp32_pixels_are_fed_to_the_model_unchanged(predictor: ProductPredictor, photos: Photos) -> None:
    _, tensors = photos
    pixels = np.stack(list(tensors.values()))
    tensor = InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=False)
    request = InferRequest(model_name=predictor.name, infer_inputs=[tensor])

    served = _served(predictor, request, {})

    assert np.array_equal(served, pixels)


def test_prepare_and_serving_outputs_agree_on_each_photo(predictor: ProductPredictor, photos: Photos) -> None:
    originals, tensors = photos
    version = predictor.active
    assert version is not None
    for name, data in originals.items():
        headers = {"content-type": "image/jpeg" if name.endswith("jpg") else "image/png"}
        answer = asyncio.run(predictor.predict(asyncio.run(predictor.preprocess(data, headers))))
        expected = version.runner(tensors[name][None]).probabilities[0]
        assert answer["predictions"][0]["confidence"] == pytest.approx(float(expected.max()), abs=0)
        assert answer["predictions"][0]["sku"] == version.labels[int(expected.argmax())]


def test_parity_fixture_really_distinguishes_images(photos: Photos) -> None:
    """Guard against a vacuous parity: different photos give different tensors."""
    _, tensors = photos
    values = list(tensors.values())
    assert not np.array_equal(values[0], values[1])
