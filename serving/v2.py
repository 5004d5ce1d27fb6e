"""The Open Inference Protocol (V2) as stock clients speak it: binary tensors, JSON, versioned routes.

KServe's own V2 route decodes a binary ``BYTES`` tensor as UTF-8 text, so a JPEG sent by
tritonclient with the binary-data extension fails (and the failure echoed the image
back); a JSON request without a JSON content type is refused; versioned routes are not
implemented.  :class:`V2Route` answers the predictor's V2 routes itself, by the letter
of the protocol: the JSON header (``Inference-Header-Content-Length`` bytes of it when
binary data follows), each binary input cut out by its ``binary_data_size`` (a ``BYTES``
element is a 4-byte little-endian length and its bytes), the answer binary where the
client asked for binary outputs.  ``/v2/models/<name>/versions/<v>/…`` answers for the
version being served.  Errors are a short reason, never the request's bytes.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from kserve import InferInput, InferRequest, InferResponse
from kserve.errors import InvalidInput as RequestRejected
from kserve.protocol.infer_type import RequestedOutput

from serving.asgi import ASGIApp, Receive, Scope, Send, read_body
from serving.predictor import ProductPredictor

log = logging.getLogger(__name__)
HEADER_LENGTH = "inference-header-content-length"
MAX_REASON = 300


class V2Route:
    """The predictor's V2 infer, ready and metadata routes, versioned or not."""

    def __init__(self, app: ASGIApp, predictor: ProductPredictor, max_bytes: int) -> None:
        self.app = app
        self.predictor = predictor
        self.max_bytes = max_bytes
        name = re.escape(predictor.name)
        self._route = re.compile(
            rf"^/v2/models/{name}(?:/versions/(?P<version>[^/]+))?(?P<verb>/infer|/ready)?$"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = self._route.match(scope["path"]) if scope["type"] == "http" else None
        version = match["version"] if match else None
        if match is None or (version is None and match["verb"] != "/infer"):
            await self.app(scope, receive, send)  # unversioned ready and metadata: KServe's own
            return
        active = self.predictor.active
        if version is not None and (active is None or version != active.version):
            await _send(
                send, 404, {"error": f"version {version[:40]} of {self.predictor.name} is not served"}
            )
            return
        if match["verb"] is None:
            await self.app({**scope, "path": f"/v2/models/{self.predictor.name}"}, receive, send)
            return
        if match["verb"] == "/ready":
            await _send(send, 200, {"name": self.predictor.name, "ready": bool(self.predictor.ready)})
            return
        if scope["method"] != "POST":
            await _send(send, 405, {"error": "POST an inference request"})
            return
        body = await read_body(scope, receive, send, self.max_bytes)
        if body is not None:
            await self._infer(body, scope, send)

    async def _infer(self, body: bytes, scope: Scope, send: Send) -> None:
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
        }
        try:
            request = parse_request(body, headers.get(HEADER_LENGTH), self.predictor.name)
            batch = await self.predictor.preprocess(request, headers)
            response = await self.predictor.predict(batch, headers)
            assert isinstance(response, InferResponse)
            answer, json_length = response.to_rest()
        except RequestRejected as exc:
            await _send(send, 400, {"error": _reason(exc)})
            return
        except Exception as exc:  # an answer, whatever went wrong; never the request's bytes
            log.error("V2 inference failed: %s: %s", type(exc).__name__, _reason(exc))
            await _send(send, 500, {"error": f"inference failed ({type(exc).__name__})"})
            return
        if json_length is None:
            await _send(send, 200, answer)
            return
        assert isinstance(answer, bytes)
        extra = [(HEADER_LENGTH.encode(), str(json_length).encode())]
        await _send_bytes(send, 200, answer, b"application/octet-stream", extra)


def parse_request(body: bytes, header_length: str | None, model: str) -> InferRequest:
    """A V2 request: its JSON header and, after it, the inputs' binary data (the protocol's extension)."""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise RequestRejected(f"{HEADER_LENGTH} must be the length of the JSON header")
        json_length = int(header_length)
    else:
        json_length = len(body)
    try:
        header = orjson.loads(body[:json_length])
        inputs, outputs = header["inputs"], header.get("outputs")
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise RequestRejected("not an inference request: a JSON object with 'inputs'") from exc
    binary = memoryview(body)[json_length:]
    parsed = []
    for entry in inputs if isinstance(inputs, list) else []:
        infer_input, binary = _input(entry, binary)
        parsed.append(infer_input)
    if not parsed:
        raise RequestRejected("an inference request needs one input")
    requested = [RequestedOutput(name=o["name"], parameters=o.get("parameters")) for o in outputs or []]
    return InferRequest(
        model_name=model,
        infer_inputs=parsed,
        request_id=header.get("id"),
        parameters=header.get("parameters"),
        request_outputs=requested or None,
    )


def _input(entry: Any, binary: memoryview) -> tuple[InferInput, memoryview]:
    try:
        name, shape, datatype = str(entry["name"]), [int(d) for d in entry["shape"]], str(entry["datatype"])
        parameters = entry.get("parameters") or {}
    except (KeyError, TypeError, ValueError) as exc:
        raise RequestRejected("each input needs a name, a shape and a datatype") from exc
    infer_input = InferInput(name=name, shape=shape, datatype=datatype, parameters=parameters)
    if "data" in entry:
        infer_input.data = entry["data"]
        return infer_input, binary
    size = parameters.get("binary_data_size")
    if not isinstance(size, int) or size < 0 or size > len(binary):
        raise RequestRejected(f"input {name[:40]!r}: no data, and no binary_data_size within the body")
    infer_input._raw_data = bytes(binary[:size])  # as_numpy() reads it as the protocol says
    return infer_input, binary[size:]


def _reason(exc: BaseException) -> str:
    return str(exc)[:MAX_REASON]


async def _send(send: Send, status: int, body: Any) -> None:
    await _send_bytes(send, status, orjson.dumps(body), b"application/json")


async def _send_bytes(
    send: Send, status: int, body: bytes, content_type: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
