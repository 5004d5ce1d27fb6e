"""ASGI pieces put around KServe's FastAPI app: the body-size bound and the lean raw-image route.

A kiosk posts one JPEG and waits for one SKU, so what KServe's generic path spends
around an inference of a few milliseconds (timing middleware matching every route,
FastAPI routing and dependency injection, a ``Request`` object, the dataplane's
content-type sniffing, header copying, ``Model.__call__``'s histograms) is most of the
HTTP overhead (``bench/predictor.py`` compares the route with the in-process limit).
:class:`RawImageRoute` answers exactly one request shape itself:
``POST /v1/models/<name>:predict`` with an ``image/jpeg`` or ``image/png`` body, by
calling the predictor's own ``preprocess`` and ``predict`` (so decoding, the shared
preprocessing, metrics, capture and the version pinned for hot swap are the same
code as on every other route).  Everything else, and this route while the model is
unloaded or not ready, goes on to KServe unchanged, so 404/503 and the JSON/V2
protocols keep KServe's behaviour.

Inference runs inline on the event loop: it is a little CPU, mostly under the GIL, and a
hop to the thread pool only adds server CPU per request without lowering latency.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from kserve.errors import InvalidInput as RequestRejected

from serving.predictor import RAW_IMAGE_TYPES, ProductPredictor

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)
_JSON = (b"content-type", b"application/json")


class _TooLarge(Exception):
    pass


async def reject_too_large(send: Send, size: int, max_bytes: int) -> None:
    """The one 413 answer, from whichever layer noticed the body is too big."""
    body = orjson.dumps({"error": f"request body of {size}+ bytes exceeds the {max_bytes}-byte limit"})
    await send({"type": "http.response.start", "status": 413, "headers": [_JSON, (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimit:
    """Answer 413 for bodies over ``max_bytes``: declared ones at once, chunked ones as they cross it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await reject_too_large(send, declared, self.max_bytes)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await reject_too_large(send, seen, self.max_bytes)


async def read_body(scope: Scope, receive: Receive, send: Send, max_bytes: int) -> bytes | None:
    """The whole body, or None once a 413 was sent or the client went away."""
    declared = _declared_length(scope)
    if declared is not None and declared > max_bytes:
        await reject_too_large(send, declared, max_bytes)
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # http.disconnect: nobody to answer
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            await reject_too_large(send, size, max_bytes)
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class RawImageRoute:
    """``POST /v1/models/<name>:predict`` with an image body, answered without KServe's dataplane."""

    def __init__(
        self,
        app: ASGIApp,
        predictor: ProductPredictor,
        is_registered: Callable[[], bool],
        max_bytes: int,
    ) -> None:
        self.app = app
        self.predictor = predictor
        self.path = f"/v1/models/{predictor.name}:predict"
        self.is_registered = is_registered
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != self.path
            or scope["method"] != "POST"
            or not self.predictor.ready
            or not self.is_registered()
        ):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type not in RAW_IMAGE_TYPES:
            await self.app(scope, receive, send)
            return
        body = await read_body(scope, receive, send, self.max_bytes)
        if body is None:
            return
        status, answer = await self._answer(body, headers)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [_JSON, (b"content-length", str(len(answer)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    async def _answer(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            batch = await self.predictor.preprocess(body, headers)
            result = await self.predictor.predict(batch, headers)
        except RequestRejected as exc:
            log.info("raw image request rejected: %s", exc)
            return 400, orjson.dumps({"error": str(exc)})
        except Exception as exc:  # a request must get an answer, whatever went wrong; never its bytes
            log.error("raw image request failed: %s: %s", type(exc).__name__, str(exc)[:300])
            return 500, orjson.dumps({"error": f"inference failed ({type(exc).__name__})"})
        return 200, orjson.dumps(result)
