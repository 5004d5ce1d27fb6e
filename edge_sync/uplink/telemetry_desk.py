"""The front door's telemetry desk: batches of machine readings a store ships become dataset versions.

A store's gateway keeps the readings its devices publish in batches
(``edge_sync.uplink.telemetry_batches``) and ships each closed batch here as one canonical CSV
body (``foundation.telemetry``), named by its sha256 the way a set of photos is.  The
body is bounded, a few batches are taken at once, and each is read whole and checked row by
row (``foundation.telemetry_batch``: runs split at outages) before anything is stored: a
refused batch claims no version and leaves nothing behind.  An accepted one becomes the next
version of ``<edge>-telemetry`` (``foundation.telemetry_versions``), whose manifest the
core's MinIO announces to the training listener like any upload's.  A batch sent again
(its answer was lost) is answered with the version it already became.  Staff's verdicts on
alarms come the same way, as JSON (``foundation.alarm_verdicts``), and become versions of
their own: the listener launches the next round on them as on readings.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from edge_sync.uplink.http import drain, media_type, read_bounded
from foundation.alarm_verdicts import read_verdicts
from foundation.credentials import Credentials
from foundation.errors import InvalidInput, NotFound, ServiceUnavailable, UnsupportedMedia
from foundation.layout import Layout, Location, telemetry_dataset
from foundation.registry import claim_next_version
from foundation.storage.store import ObjectStore
from foundation.telemetry import SENSORS
from foundation.telemetry_batch import read_batch
from foundation.telemetry_versions import store_telemetry_version, store_verdict_version

log = logging.getLogger(__name__)
MAX_BATCH_BYTES = 16 * 1_048_576
"""A batch is a few hours of one store's machines; a body over this is refused unread."""
MAX_VERDICTS_BYTES = 1_048_576
"""A batch of verdicts is a few hundred bytes each, a thousand at most."""
MAX_BATCH_ROWS = 200_000
BATCHES_AT_ONCE = 4
"""Batches the door reads and checks at once (each holds its body and its parsed rows); more wait."""
DIGEST_HEADER = "X-Edgecore-Batch-Sha256"


class TelemetryDesk:
    def __init__(self, store: ObjectStore, layout: Layout, credentials: Credentials) -> None:
        self.store = store
        self.layout = layout
        self.credentials = credentials

    def authenticate(self, edge: str, authorization: str | None) -> None:
        """The caller holds ``edge``'s token: an edge writes only its own telemetry (refusals logged)."""
        self.credentials.authenticate_edge(edge, authorization, "a telemetry batch")

    def lookup(self, edge: str, digest: str) -> str | None:
        """The version a batch with this sha256 became, if that version was stored whole."""
        try:
            version = str(
                json.loads(self.store.get_bytes(self._marker(edge, digest), max_bytes=4096))["version"]
            )
            self.store.head(self.layout.dataset_manifest(telemetry_dataset(edge), version))
        except NotFound:
            return None
        return version

    def accept(self, edge: str, digest: str, body: bytes) -> tuple[str, bool]:
        """(version, duplicate): the batch checked whole, stored as a new version, or found stored."""
        known = self._known(edge, digest, body)
        if known is not None:
            return known, True
        runs, left_out = read_batch(body, SENSORS, MAX_BATCH_ROWS)
        version = self._allocate(edge, digest)
        metadata = {"batch_sha256": digest, "readings_left_out": left_out}
        source = f"batch {digest[:12]}"
        store_telemetry_version(self.store, self.layout, runs, edge, SENSORS, source, metadata, version)
        log.info(
            "edge %s: telemetry batch %s… is %s (%d readings left out)", edge, digest[:12], version, left_out
        )
        return version, False

    def accept_verdicts(self, edge: str, digest: str, body: bytes) -> tuple[str, bool]:
        """(version, duplicate) of a batch of staff's verdicts, as :meth:`accept`."""
        known = self._known(edge, digest, body)
        if known is not None:
            return known, True
        verdicts = read_verdicts(body)
        version = self._allocate(edge, digest)
        store_verdict_version(self.store, self.layout, body, verdicts, edge, digest, version)
        log.info("edge %s: %d alarm verdicts are %s", edge, len(verdicts), version)
        return version, False

    def _known(self, edge: str, digest: str, body: bytes) -> str | None:
        if hashlib.sha256(body).hexdigest() != digest:
            raise InvalidInput("the batch's bytes do not match its declared sha256")
        return self.lookup(edge, digest)

    def _allocate(self, edge: str, digest: str) -> str:
        """The version this batch was given by an earlier attempt (it died half-way), or a new one.
        The marker is written before any file, so a retry never makes a second version."""
        marker = self._marker(edge, digest)
        try:
            return str(json.loads(self.store.get_bytes(marker, max_bytes=4096))["version"])
        except NotFound:
            pass
        dataset = telemetry_dataset(edge)
        version = claim_next_version(self.store, self.layout.dataset_versions(dataset), f"batch:{digest}")
        if self.store.put_if_absent(marker, json.dumps({"version": version}).encode()):
            return version
        return str(
            json.loads(self.store.get_bytes(marker, max_bytes=4096))["version"]
        )  # a concurrent attempt won

    def _marker(self, edge: str, digest: str) -> Location:
        return self.layout.dataset_set_marker(telemetry_dataset(edge), digest)


def _digest(request: Request) -> str:
    value = request.headers.get(DIGEST_HEADER, "").strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise InvalidInput(f"{DIGEST_HEADER} must be the batch's sha256 in hex")
    return value


def routes(desk: TelemetryDesk) -> APIRouter:
    """The telemetry route of the front door (``edge_sync.frontdoor``)."""
    app = APIRouter()

    busy = asyncio.Semaphore(BATCHES_AT_ONCE)

    @app.post("/v1/edges/{edge}/telemetry")
    async def post_batch(edge: str, request: Request) -> JSONResponse:
        try:
            desk.authenticate(edge, request.headers.get("authorization"))
            kind = media_type(request)
            if kind not in ("text/csv", "application/json"):
                raise UnsupportedMedia("send readings as text/csv, verdicts as application/json")
            digest = _digest(request)
            if busy.locked():
                raise ServiceUnavailable("the core is taking other telemetry batches: send this one later")
            async with busy:
                if kind == "text/csv":
                    body = await read_bounded(request, MAX_BATCH_BYTES, "a telemetry batch")
                    version, duplicate = await run_in_threadpool(desk.accept, edge, digest, body)
                else:
                    body = await read_bounded(request, MAX_VERDICTS_BYTES, "a batch of verdicts")
                    version, duplicate = await run_in_threadpool(desk.accept_verdicts, edge, digest, body)
        except Exception as exc:
            log.warning("telemetry batch of edge %s refused: %s: %s", edge[:64], type(exc).__name__, exc)
            await drain(request.stream(), 1 << 20)
            raise
        return JSONResponse({"version": version, "duplicate": duplicate}, 200 if duplicate else 201)

    return app
