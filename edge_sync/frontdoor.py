"""The core's front door: the one address edges reach, over TLS, each edge with its own token.

It serves what crosses between a store and the core: an edge posts its image sets
(``edge_sync.uplink.receiver``), pulls its own model (``edge_sync.delivery.door``, and as a
modelcar ``edge_sync.delivery.modelcar_door``) and
reports how it serves it (``edge_sync.delivery.report_desk``), nothing else.  Tokens live
in one file (``<state_dir>/door/tokens.json``, written by ``edgecore core enrol``) that is
read again when it changes, two per edge while one is being rotated; a placeholder or
weak token stops the door at start-up.  It refuses to start without a certificate: there
is no plain-HTTP mode.
"""

from __future__ import annotations

import logging
import ssl

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from edge_sync.delivery.door import ModelDoor
from edge_sync.delivery.door import routes as model_routes
from edge_sync.delivery.modelcar_door import ModelcarDoor
from edge_sync.delivery.modelcar_door import routes as modelcar_routes
from edge_sync.delivery.report_desk import ReportDesk
from edge_sync.uplink import receiver, telemetry_desk
from edge_sync.uplink.http import install_error_handlers, read_bounded
from edge_sync.uplink.memory import bound_large_allocations
from edge_sync.uplink.metrics import UplinkMetrics
from edge_sync.uplink.telemetry_desk import TelemetryDesk
from foundation.credentials import Credentials
from foundation.edge_report import MAX_REPORT_BYTES
from foundation.layout import Layout
from foundation.messaging import EventProducer, ensure_topics
from foundation.modelcar import core_registry
from foundation.settings import Settings
from foundation.storage.reader import BucketReader
from foundation.storage.store import ObjectStore
from foundation.storage.wire import S3Wire
from foundation.tls import server_context

log = logging.getLogger(__name__)
STALE_UPLOAD_S = 24 * 3600.0
"""A multipart upload of a set begun this long ago belongs to a receiver that died: abort it (a day:
another replica's live upload of a large set over a slow store link is never cut short)."""


def edge_credentials(settings: Settings) -> Credentials:
    return Credentials("edge", path=settings.door_tokens_file)


def build_receiver(
    settings: Settings, credentials: Credentials, producer: EventProducer | None = None
) -> receiver.Receiver:
    """The set routes' receiver: topics and the training bucket made sure of, stale uploads aborted."""
    bound_large_allocations()
    ensure_topics(settings.kafka)
    store, layout = ObjectStore(settings.s3), Layout(settings.buckets)
    store.ensure_bucket(layout.training_bucket)
    aborted = store.abort_stale_uploads(layout.datasets_root(), STALE_UPLOAD_S)
    if aborted:
        log.warning("aborted %d multipart uploads left by a receiver that stopped mid-transfer", aborted)
    return receiver.Receiver(
        settings.uplink,
        settings.images.max_pixels,
        settings.s3.multipart_chunk_mb * 1_048_576,
        store,
        S3Wire(settings.s3),
        layout,
        producer or EventProducer(settings.kafka, "edgecore/frontdoor"),
        settings.kafka.topic_training_data_ready,
        credentials,
    )


def build_model_door(settings: Settings, credentials: Credentials) -> ModelDoor:
    return ModelDoor(
        BucketReader.connect(settings.s3),
        Layout(settings.buckets),
        credentials,
        settings.state_dir / "door" / "cache",
        settings.door.wait_s,
    )


def build_modelcar_door(settings: Settings, credentials: Credentials) -> ModelcarDoor | None:
    """The door's read-only registry of modelcars, where the core has a modelcar registry."""
    if not settings.modelcar.registry:
        return None
    return ModelcarDoor(core_registry(settings), settings.modelcar.registry, credentials)


def build_report_desk(settings: Settings, credentials: Credentials) -> ReportDesk:
    return ReportDesk(
        ObjectStore(settings.s3), Layout(settings.buckets), credentials, settings.door.report_interval_s
    )


def create_app(
    sets: receiver.Receiver,
    models: ModelDoor,
    reports: ReportDesk,
    metrics: UplinkMetrics | None = None,
    modelcars: ModelcarDoor | None = None,
) -> FastAPI:
    metrics = metrics or UplinkMetrics("receiver")
    app = FastAPI(title="edgecore front door", docs_url=None, redoc_url=None)
    install_error_handlers(app, metrics)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(receiver.routes(sets, metrics))
    app.include_router(telemetry_desk.routes(TelemetryDesk(sets.store, sets.layout, sets.credentials)))
    app.include_router(model_routes(models))
    if modelcars is not None:
        app.include_router(modelcar_routes(modelcars))

    @app.put("/v1/edges/{edge}/report", status_code=204)
    async def report(edge: str, request: Request) -> Response:
        reports.authorize(edge, request.headers.get("authorization"))
        body = await read_bounded(request, MAX_REPORT_BYTES, "a report")
        await run_in_threadpool(reports.accept, edge, body)
        return Response(status_code=204)

    return app


def tls_options(settings: Settings) -> dict[str, object]:
    """uvicorn's TLS options; checked here first, so a missing file is a clear error, not a stack."""
    server_context(settings.cert_file, settings.key_file, settings.tls.client_ca_file)
    options: dict[str, object] = {
        "ssl_certfile": str(settings.cert_file),
        "ssl_keyfile": str(settings.key_file),
    }
    if settings.tls.client_ca_file is not None:
        options.update(ssl_ca_certs=str(settings.tls.client_ca_file), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def run_front_door(settings: Settings) -> None:
    credentials = edge_credentials(settings)
    if not credentials.principals:
        log.warning("no edge is enrolled yet (%s): every request will be refused", settings.door_tokens_file)
    sets = build_receiver(settings, credentials)
    metrics = UplinkMetrics("receiver")
    app = create_app(
        sets,
        build_model_door(settings, credentials),
        build_report_desk(settings, credentials),
        metrics,
        build_modelcar_door(settings, credentials),
    )
    if settings.door.metrics_port is not None:
        metrics.serve(settings.door.metrics_port, settings.door.metrics_host)
    try:
        uvicorn.run(
            app,
            host=settings.door.host,
            port=settings.door.port,
            log_level="info",
            access_log=False,
            timeout_graceful_shutdown=30,
            limit_concurrency=settings.door.max_connections,
            **tls_options(settings),  # type: ignore[arg-type]
        )
    finally:
        sets.close()
        sets.producer.close()
