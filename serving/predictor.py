"""The edge predictor: a ``kserve.Model`` that turns product photos into SKUs.

It overrides only ``load``, ``preprocess`` and ``predict``; KServe's ModelServer does
the HTTP.  Three request shapes reach ``preprocess``:

* V1 JSON ``{"instances": [{"image_bytes": {"b64": "..."}}]}`` (TF-Serving style),
* V2 / Open Inference Protocol: one input, either ``BYTES`` ``[N]`` of base64-encoded
  JPEG/PNG, or ``FP32`` ``[N, S, S, 3]`` pixels in [0, 1],
* a raw JPEG/PNG body on the V1 route with ``Content-Type: image/jpeg|image/png``:
  KServe's dataplane hands any non-JSON content type to the model as bytes, so a kiosk
  can post the photo as is, with no base64 or JSON cost (the server's
  ``serving.asgi.RawImageRoute`` calls ``preprocess``/``predict`` for these directly).

Encoded images go through ``foundation.preprocessing.preprocess``, the function the
training ``prepare`` step uses.  The version that answers a request is taken once, in
``preprocess``, and travels with the request, so a hot swap never splits a request
across two versions and in-flight requests finish on the version they started on.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput as RequestRejected

from foundation.errors import IntegrityError, InvalidInput
from foundation.preprocessing import preprocess
from foundation.settings import Settings
from serving import metrics
from serving.capture import Capture, CaptureItem
from serving.model_version import ModelVersion

TOP_K = 3
MAX_IMAGES = 32
RAW_IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})

Pixels = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Batch:
    """What ``preprocess`` hands to ``predict``: pixels, their sources, and the version."""

    version: ModelVersion
    pixels: Pixels
    images: list[bytes | None]
    v2: InferRequest | None
    started: float


class ProductPredictor(Model):  # type: ignore[misc]
    """Serves one edge's product model; ``serve`` switches versions atomically."""

    def __init__(
        self,
        name: str,
        edge: str,
        settings: Settings,
        open_current: Callable[[], ModelVersion],
        capture: Capture | None = None,
    ) -> None:
        super().__init__(name)
        self.edge = edge
        self._size = settings.images.size
        self._max_pixels = settings.images.max_pixels
        self._threshold = settings.serving.confidence_threshold
        self._open_current = open_current
        self._capture = capture
        self._active: ModelVersion | None = None
        self._metrics = metrics.ModelMetrics.bind(name)

    # -- versions ----------------------------------------------------------------------
    @property
    def active(self) -> ModelVersion | None:
        return self._active

    def load(self) -> bool:
        """Load the current version (at start-up; later versions come through ``serve``)."""
        self.serve(self._open_current())
        return bool(self.ready)

    def serve(self, version: ModelVersion) -> None:
        """Switch to an already loaded and warmed-up version (one reference assignment)."""
        if version.name != self.name:
            raise IntegrityError(f"model version {version.name} {version.version} is not model {self.name}")
        if version.catalogue.edge != self.edge:
            raise IntegrityError(
                f"model {version.name} {version.version} was trained for edge "
                f"{version.catalogue.edge}, not {self.edge}"
            )
        previous = self._active
        self._active = version
        self.ready = True
        metrics.set_serving_version(self.name, version.version, previous.version if previous else None)
        if previous is not None and previous.version != version.version:
            self._metrics.swaps.inc()

    # -- what a client can discover (GET /v2/models/<name>) -----------------------------
    def get_input_types(self) -> list[dict[str, Any]]:
        return [
            {"name": "image", "datatype": "BYTES", "shape": [-1]},  # encoded JPEG/PNG, one per element
            {"name": "pixels", "datatype": "FP32", "shape": [-1, self._size, self._size, 3]},  # or: in [0, 1]
        ]

    def get_output_types(self) -> list[dict[str, Any]]:
        k = min(TOP_K, len(self._active.labels)) if self._active else TOP_K
        return [
            {"name": "sku", "datatype": "BYTES", "shape": [-1, k]},
            {"name": "probability", "datatype": "FP32", "shape": [-1, k]},
            {"name": "product", "datatype": "BYTES", "shape": [-1, k]},
            {"name": "recognized", "datatype": "BOOL", "shape": [-1]},
        ]

    # -- requests ----------------------------------------------------------------------
    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Batch:
        started = time.perf_counter()
        version = self._active
        if version is None:
            raise RequestRejected(f"model {self.name} has no version loaded")
        v2: InferRequest | None = None
        try:
            if isinstance(payload, InferRequest):
                v2 = payload
                pixels, images = self._from_v2(payload)
            elif isinstance(payload, (bytes, bytearray)):
                images = [self._raw_body(bytes(payload), headers or {})]
                pixels = self._decode(images)
            elif isinstance(payload, dict):
                images = self._from_v1(payload)
                pixels = self._decode(images)
            else:
                raise RequestRejected(f"unsupported request body of type {type(payload).__name__}")
        except InvalidInput as exc:  # edgecore's (e.g. InvalidImage) → KServe's 400
            raise RequestRejected(str(exc)) from exc
        return Batch(version=version, pixels=pixels, images=images, v2=v2, started=started)

    async def predict(
        self, payload: Batch, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferResponse:
        try:
            return self._predict(payload, headers)
        except Exception:  # a rollout wave is judged by this rate (edge_sync.delivery.waves)
            self._metrics.errors.inc(len(payload.images))  # per image, as predictions are
            raise

    def _predict(self, payload: Batch, headers: dict[str, str] | None) -> dict[str, Any] | InferResponse:
        version = payload.version
        decision = version.decide(payload.pixels, self._threshold)
        probs = decision.probabilities
        k = min(TOP_K, len(version.labels))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        results = []
        for i, row in enumerate(order):
            top = [
                {"sku": version.labels[j], "probability": float(probs[i, j]), **version.products[j]}
                for j in row
            ]
            confidence, recognized = float(decision.confidence[i]), bool(decision.recognized[i])
            result = {"sku": top[0]["sku"], "confidence": confidence, "recognized": recognized, "top": top}
            results.append(result)
            self._observe(version, payload, i, confidence, recognized, result, headers)
        self._metrics.latency.observe(time.perf_counter() - payload.started)
        if payload.v2 is not None:
            return self._v2_response(payload.v2, version, probs, order, decision.recognized)
        return {"model_name": self.name, "model_version": version.version, "predictions": results}

    # -- decoding ----------------------------------------------------------------------
    def _decode(self, images: list[bytes | None]) -> Pixels:
        out = np.empty((len(images), self._size, self._size, 3), dtype=np.float32)
        for i, data in enumerate(images):
            assert data is not None
            out[i] = preprocess(data, self._size, self._max_pixels)
        return out

    def _raw_body(self, body: bytes, headers: dict[str, str]) -> bytes:
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type not in RAW_IMAGE_TYPES:
            raise RequestRejected(
                f"unsupported content type {content_type!r}: post JSON, or an image/jpeg or image/png body"
            )
        if not body:
            raise RequestRejected("empty request body")
        return body

    def _from_v1(self, body: dict[str, Any]) -> list[bytes | None]:
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            raise RequestRejected('expected {"instances": [{"image_bytes": {"b64": ...}}, ...]}')
        _check_count(len(instances))
        images: list[bytes | None] = []
        for i, instance in enumerate(instances):
            inner = instance.get("image_bytes", instance) if isinstance(instance, dict) else None
            encoded = inner.get("b64") if isinstance(inner, dict) else None
            if not isinstance(encoded, str):
                raise RequestRejected(f'instance {i}: expected {{"image_bytes": {{"b64": <base64 image>}}}}')
            images.append(_b64decode(encoded, f"instance {i}"))
        return images

    def _from_v2(self, request: InferRequest) -> tuple[Pixels, list[bytes | None]]:
        if len(request.inputs) != 1:
            raise RequestRejected(f"expected exactly one input tensor, got {len(request.inputs)}")
        tensor = request.inputs[0]
        shape = [int(d) for d in tensor.shape]
        if tensor.datatype == "BYTES":
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 1:
                raise RequestRejected(
                    f"BYTES input {tensor.name!r} must have shape [N] or [N, 1], got {shape}"
                )
            _check_count(shape[0])
            elements = _as_numpy(tensor).reshape(-1)
            images: list[bytes | None] = [_element_bytes(e, i) for i, e in enumerate(elements)]
            return self._decode(images), images
        if tensor.datatype == "FP32":
            want = [self._size, self._size, 3]
            if len(shape) != 4 or shape[1:] != want or shape[0] < 1:
                raise RequestRejected(
                    f"FP32 input {tensor.name!r} must have shape [N, {want[0]}, {want[1]}, 3], got {shape}"
                )
            _check_count(shape[0])
            pixels = np.ascontiguousarray(_as_numpy(tensor), dtype=np.float32)
            if not np.all(np.isfinite(pixels)) or pixels.min() < 0.0 or pixels.max() > 1.0:
                raise RequestRejected(f"FP32 input {tensor.name!r} must hold finite pixel values in [0, 1]")
            return pixels, [None] * shape[0]
        raise RequestRejected(
            f"input {tensor.name!r} has datatype {tensor.datatype}: send BYTES (encoded images) or FP32"
        )

    # -- answers -----------------------------------------------------------------------
    def _v2_response(
        self,
        request: InferRequest,
        version: ModelVersion,
        probs: Pixels,
        order: npt.NDArray[np.intp],
        recognized: npt.NDArray[np.bool_],
    ) -> InferResponse:
        n, k = order.shape
        skus = np.array([[version.labels[j] for j in row] for row in order], dtype=np.object_)
        products = np.array([[version.products_json[j] for j in row] for row in order], dtype=np.object_)
        top_probs = np.take_along_axis(probs, order, axis=1).astype(np.float32)
        return InferResponse(
            response_id=request.id or uuid.uuid4().hex,
            model_name=self.name,
            model_version=version.version,
            infer_outputs=[
                InferOutput("sku", [n, k], "BYTES", skus),
                InferOutput("probability", [n, k], "FP32", top_probs),
                InferOutput("product", [n, k], "BYTES", products),
                InferOutput("recognized", [n], "BOOL", recognized.astype(np.bool_)),
            ],
            # Also as a parameter: kserve's InferResponse.from_bytes drops model_version.
            parameters={"model_version": version.version},
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )

    def _observe(
        self,
        version: ModelVersion,
        batch: Batch,
        index: int,
        confidence: float,
        recognized: bool,
        result: dict[str, Any],
        headers: dict[str, str] | None,
    ) -> None:
        self._metrics.predictions.inc()
        self._metrics.confidence.observe(confidence)
        if recognized:
            return
        self._metrics.unrecognized.inc()
        if self._capture is None:
            return
        record = {
            "edge": self.edge,
            "model": version.name,
            "model_version": version.version,
            "threshold": self._threshold,
            "request_id": (headers or {}).get("x-request-id"),
            "prediction": result,
        }
        self._capture.submit(
            CaptureItem(
                image=batch.images[index],
                pixels=None if batch.images[index] else batch.pixels[index],
                record=record,
            )
        )


def _check_count(n: int) -> None:
    if n > MAX_IMAGES:
        raise RequestRejected(f"{n} images in one request; send at most {MAX_IMAGES}")


def _element_bytes(element: object, index: int) -> bytes:
    """A BYTES element: base64 text in JSON (images are not UTF-8), raw bytes over gRPC."""
    if isinstance(element, str):
        return _b64decode(element, f"element {index}")
    if isinstance(element, bytes) and element:
        return element
    raise RequestRejected(f"element {index}: expected a base64-encoded JPEG or PNG string")


def _b64decode(value: str, what: str) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestRejected(f"{what}: not valid base64: {exc}") from exc
    if not data:
        raise RequestRejected(f"{what}: empty image")
    return data


def _as_numpy(tensor: Any) -> npt.NDArray[Any]:
    try:
        return np.asarray(tensor.as_numpy())
    except (ValueError, TypeError) as exc:
        raise RequestRejected(
            f"input {tensor.name!r}: data does not match shape {tensor.shape}: {exc}"
        ) from exc
