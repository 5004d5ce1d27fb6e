"""Entry point of the edge predictor: build Settings once, run ``kserve.ModelServer``.

``python -m serving.server --edge <edge> [--model-uri s3://…|DIR] [--http-port 8080]``
(the ServingRuntime's container command; ``edgecore serve start`` runs the same).

Two things are added to KServe's FastAPI app before it starts, both at the edge of
the process where they belong: a body-size bound (HTTP 413 before a large body is
buffered, whatever the route) and a 400 (not FastAPI's 422) for request bodies that
fail the Open Inference Protocol schema, so every bad input gets the same status.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
import uvloop
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse

from edgecore.layout import Layout, edge_model_name
from edgecore.settings import Settings
from edgecore.storage import ObjectStore
from serving.capture import Capture
from serving.model_version import VersionStore
from serving.predictor import ProductPredictor
from serving.repository import EdgeModelRepository

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
    edge: str
    model_uri: str | None = None
    http_port: int = 8080
    capture: bool = True
    access_log: bool = False


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Answer 413 for bodies over ``max_bytes``: declared ones at once, chunked ones as they cross it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send, int(declared))
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
                await self._reject(send, seen)

    async def _reject(self, send: Send, size: int) -> None:
        body = orjson.dumps(
            {"error": f"request body of {size}+ bytes exceeds the {self.max_bytes}-byte limit"}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _schema_error(_: Request, exc: Exception) -> ORJSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    reason = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in errors[:3])
    return ORJSONResponse(status_code=400, content={"error": f"invalid inference request: {reason or exc}"})


def build(
    settings: Settings, options: ServerOptions
) -> tuple[ProductPredictor, EdgeModelRepository, Capture | None]:
    """The predictor, its repository and its capture queue, with the start-up version loaded."""
    layout = Layout(settings)
    store = ObjectStore(settings)
    name = edge_model_name(options.edge)
    repository = EdgeModelRepository(
        name, options.edge, store, layout, VersionStore(settings), options.model_uri
    )
    capture = Capture(store, layout, options.edge) if options.capture else None
    predictor = ProductPredictor(name, options.edge, settings, repository.open_current, capture)
    repository.attach(predictor)
    predictor.load()
    return predictor, repository, capture


def serve(settings: Settings, options: ServerOptions) -> None:
    """Run the predictor until SIGTERM/SIGINT (one uvicorn worker, REST only)."""
    import kserve
    from kserve.model_server import app

    predictor, repository, capture = build(settings, options)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_exception_handler(RequestValidationError, _schema_error)
    server = kserve.ModelServer(
        http_port=options.http_port,
        workers=1,
        registered_models=repository,
        enable_grpc=False,
        enable_latency_logging=False,
    )
    # KServe configures logging in the constructor; per-request access and timing lines
    # cost more than the inference itself, so they are opt-in.
    for noisy in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(noisy).disabled = not options.access_log
    # With one worker, ModelServer runs uvicorn inside its own asyncio.run(), so
    # uvicorn's loop="auto" never applies; uvloop (uvicorn[standard]) must be the policy.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())  # ModelServer calls get_event_loop() first
    # Everything imported and loaded so far lives as long as the process: keep the
    # collector from rescanning it (a full collection over kserve's and TF Lite's
    # objects is a tail-latency spike).
    gc.freeze()
    try:
        server.start([predictor])
    finally:
        if capture is not None:
            capture.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="serving.server", description=__doc__.splitlines()[0])
    parser.add_argument("--edge", required=True, help="Edge (store) id; the model is <edge>-products.")
    parser.add_argument("--model-uri", default=None, help="Version to serve when the edge has no pointer.")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--no-capture", action="store_true", help="Do not save low-confidence images.")
    parser.add_argument("--access-log", action="store_true", help="Log every request (slower).")
    args, _ = parser.parse_known_args(argv)
    serve(
        Settings(),
        ServerOptions(
            edge=args.edge,
            model_uri=args.model_uri,
            http_port=args.http_port,
            capture=not args.no_capture,
            access_log=args.access_log,
        ),
    )


if __name__ == "__main__":
    main()
