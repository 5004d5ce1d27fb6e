"""Entry point of the edge predictor: build Settings once, run ``kserve.ModelServer``.

``python -m serving.server --edge <edge> [--model-uri s3://…|oci://…|DIR] [--http-port 8080]``
(the ServingRuntime's container command; ``edgecore serve start`` runs the same).

Three things are added to KServe's FastAPI app before it starts, all at the edge of
the process where they belong: a body-size bound (HTTP 413 before a large body is
buffered, whatever the route), a 400 (not FastAPI's 422) for request bodies that
fail the Open Inference Protocol schema, so every bad input gets the same status, and
the lean raw-image route (``serving.asgi.RawImageRoute``) in front of everything.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from dataclasses import dataclass
from typing import Any

import uvloop
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse

from foundation.layout import Layout, edge_model_name
from foundation.modelcar import core_registry, door_host, door_registry
from foundation.oci import Registry
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from serving.asgi import ASGIApp, BodyLimit, RawImageRoute
from serving.capture import Capture
from serving.model_version import VersionStore
from serving.predictor import ProductPredictor
from serving.repository import EdgeModelRepository
from serving.v2 import V2Route

log = logging.getLogger(__name__)


HONOURED_KSERVE_FLAGS = frozenset(
    {
        "max_threads",
        "max_asyncio_workers",
        "enable_docs_url",
        "timeout_keep_alive",
        "ssl_certfile",
        "ssl_keyfile",
    }
)
"""KServe's own server flags passed on to its ModelServer; ``--http_port`` and ``--model_name`` are read
as this server's own, and every other KServe flag given is refused unless it asks for what runs anyway."""
AS_RUN = {"workers": 1, "enable_grpc": False, "enable_latency_logging": False}
"""KServe flags this server fixes (one REST worker: the hot swap keeps its state in one process)."""


@dataclass(frozen=True)
class ServerOptions:
    edge: str
    model_uri: str | None = None
    http_port: int = 8080
    host: str = "127.0.0.1"
    capture: bool = True
    access_log: bool = False
    kserve: tuple[tuple[str, Any], ...] = ()
    """KServe's own ModelServer options given on the command line (``HONOURED_KSERVE_FLAGS``)."""


async def _schema_error(_: Request, exc: Exception) -> ORJSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    reason = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in errors[:3])
    return ORJSONResponse(status_code=400, content={"error": f"invalid inference request: {reason or exc}"})


def build(
    settings: Settings, options: ServerOptions
) -> tuple[ProductPredictor, EdgeModelRepository, Capture | None]:
    """The predictor, its repository and its capture queue, with the start-up version loaded."""
    layout = Layout(settings.buckets)
    store = ObjectStore(settings.s3)
    name = edge_model_name(options.edge)
    repository = EdgeModelRepository(
        name,
        options.edge,
        store,
        layout,
        VersionStore(
            store, settings.state_dir / "serving", settings, modelcar_registries(settings, options.edge)
        ),
        options.model_uri,
    )
    capture = Capture(store, layout, options.edge) if options.capture else None
    predictor = ProductPredictor(name, options.edge, settings, repository.open_current, capture)
    repository.attach(predictor)
    predictor.load()
    return predictor, repository, capture


def modelcar_registries(settings: Settings, edge: str) -> dict[str, Registry]:
    """Who this server pulls ``oci://`` versions with: at an edge, the front door with its login; at
    the core, the core's registry."""
    registries: dict[str, Registry] = {}
    door = door_registry(settings, edge)
    if door is not None:
        registries[door_host(settings)] = door
    if settings.modelcar.registry:
        registries[settings.modelcar.registry.partition("/")[0]] = core_registry(settings)
    return registries


def put_raw_route_in_front(
    app: FastAPI, predictor: ProductPredictor, repository: EdgeModelRepository, max_bytes: int
) -> None:
    """Make :class:`RawImageRoute` the outermost layer of ``app``.

    KServe adds its timing middleware (which matches every route per request) when the
    server starts, after anything added here, and ``add_middleware`` always nests new
    layers inside Starlette's error middleware; so the finished stack is wrapped when
    Starlette builds it, on the first request.
    """
    build_stack = app.build_middleware_stack

    def is_registered() -> bool:
        return bool(repository.get_model(predictor.name) is predictor)

    def build() -> ASGIApp:
        return RawImageRoute(
            V2Route(build_stack(), predictor, max_bytes), predictor, is_registered, max_bytes
        )

    app.build_middleware_stack = build  # type: ignore[method-assign]


def bound_server(host: str, **options: Any) -> Any:
    """KServe's ModelServer, listening on ``host``: its REST server binds 0.0.0.0 whatever it is told,
    so the address is set on the uvicorn config it builds, just before that config is served."""
    import kserve

    class BoundModelServer(kserve.ModelServer):  # type: ignore[misc]
        async def _serve(self) -> None:
            if self._rest_server is not None:
                self._rest_server.config.host = host
            await super()._serve()

    return BoundModelServer(**options)


def serve(settings: Settings, options: ServerOptions) -> None:
    """Run the predictor until SIGTERM/SIGINT (one uvicorn worker, REST only)."""
    from kserve.model_server import app

    predictor, repository, capture = build(settings, options)
    app.add_middleware(BodyLimit, max_bytes=settings.serving.max_request_bytes)
    app.add_exception_handler(RequestValidationError, _schema_error)
    put_raw_route_in_front(app, predictor, repository, settings.serving.max_request_bytes)
    server = bound_server(
        options.host,
        http_port=options.http_port,
        workers=1,
        registered_models=repository,
        enable_grpc=False,
        enable_latency_logging=False,
        **dict(options.kserve),
    )
    # KServe configures logging in the constructor; per-request access and timing lines
    # cost more than the inference itself, so they are opt-in.
    for noisy in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(noisy).disabled = not options.access_log
    if not options.access_log:
        # uvicorn formats the access line's arguments whenever the logger has handlers,
        # disabled or not; with none it skips the call.
        access = logging.getLogger("uvicorn.access")
        access.handlers.clear()
        access.propagate = False
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


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, tuple[tuple[str, Any], ...]]:
    """This server's flags and KServe's own (a ServingRuntime may pass either): KServe's are honoured
    or refused with a one-line error, never dropped."""
    from kserve.model_server import parser as kserve_parser

    parser = argparse.ArgumentParser(
        prog="serving.server", description=__doc__.splitlines()[0], parents=[kserve_parser]
    )
    parser.add_argument("--edge", required=True, help="Edge (store) id; the model is <edge>-products.")
    parser.add_argument("--model-uri", default=None, help="Version to serve when the edge has no pointer.")
    parser.add_argument("--http-port", dest="http_port", type=int, default=8080, help="Same as --http_port.")
    parser.add_argument("--host", default=None, help="Address to listen on (default: EDGECORE_SERVER_HOST).")
    parser.add_argument("--no-capture", action="store_true", help="Do not save images flagged unsure.")
    parser.add_argument("--access-log", action="store_true", help="Log every request (slower).")
    args = parser.parse_args(argv)
    if args.model_name not in (kserve_parser.get_default("model_name"), edge_model_name(args.edge)):
        parser.error(f"--model_name {args.model_name} is not this edge's model, {edge_model_name(args.edge)}")
    given = {a.split("=", 1)[0] for a in (sys.argv[1:] if argv is None else argv) if a.startswith("--")}
    honoured = []
    for action in kserve_parser._actions:
        if not given & set(action.option_strings) or action.dest in ("http_port", "model_name"):
            continue
        if action.dest in AS_RUN and getattr(args, action.dest) == AS_RUN[action.dest]:
            continue
        if action.dest not in HONOURED_KSERVE_FLAGS:
            parser.error(
                f"{action.option_strings[0]} is not supported by the edge predictor (one REST worker)"
            )
        honoured.append((action.dest, getattr(args, action.dest)))
    return args, tuple(honoured)


def main(argv: list[str] | None = None) -> None:
    args, kserve_options = parse(argv)
    settings = Settings()
    serve(
        settings,
        ServerOptions(
            edge=args.edge,
            host=args.host or settings.serving.server_host,
            model_uri=args.model_uri,
            http_port=args.http_port,
            capture=not args.no_capture,
            access_log=args.access_log,
            kserve=kserve_options,
        ),
    )


if __name__ == "__main__":
    main()
