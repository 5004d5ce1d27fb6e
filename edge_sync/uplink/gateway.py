"""The edge gateway: where a store's devices and kiosks hand in labelled product images.

``POST /v1/images/{sku}`` (body: the JPEG or PNG, ``Content-Type: image/jpeg|png``)
stores a validated image in the edge's own bucket under its sha256, so posting the
same photo twice stores it once, and keeps a copy in the outbox's spool for the
shipper.  ``POST /v1/sets/{sku}/complete`` puts every image of that SKU not yet shipped
into a new set of the durable outbox, which the shipper sends to the core.
``POST /v1/hard-examples`` labels a capture that serving could not recognize; the next
set completed takes every labelled hard example not yet in a set, so they reach the core
(and training) by the one path photos take.  ``GET /v1/pending`` lists what has not shipped.

Every input is bounded before it is trusted: the body size (Content-Length and while
streaming), the content type, the image itself (fully decoded, with the pixel-count
bomb guard), the SKU and every other name that reaches an object key.  Decoding is
bounded too: images wait for their turn under a budget of pixels decoded at once
(:class:`DecodeBudget`), so a flood of large images cannot take the store's memory.

Who may call: a device (its token in ``devices.json``) may post images; only staff
(``staff.json``) label hard examples, complete sets and read what is pending.  Every
call carries ``Authorization: Bearer <token>``, or, from the store's page
(``edge_sync.uplink.page``), a staff session's cookie; refusals are logged, tokens never.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from edge_sync.uplink.alarm_desk import AlarmDesk, VerdictQueue
from edge_sync.uplink.http import (
    client_address,
    install_error_handlers,
    install_headers,
    media_type,
    read_bounded,
)
from edge_sync.uplink.memory import release_free_memory
from edge_sync.uplink.metrics import UplinkMetrics
from edge_sync.uplink.outbox import HARD_EXAMPLE, INCOMING, Item, Outbox
from edge_sync.uplink.page import MAX_JSON_BYTES, Allow, install_page
from edge_sync.uplink.review import ReviewDesk, parse_day
from edge_sync.uplink.sessions import COOKIE, PAGE_HEADER, StaffSessions
from foundation.credentials import Credentials, bearer
from foundation.errors import (
    Conflict,
    EdgecoreError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthorized,
    UnsupportedMedia,
)
from foundation.layout import Layout, Location, check_image_id, check_name, check_sku
from foundation.preprocessing import check_complete, check_decodes, open_image
from foundation.settings import ImageSettings, UplinkSettings
from foundation.storage.store import ObjectStore

log = logging.getLogger(__name__)
CONTENT_TYPES = {"image/jpeg": ("JPEG", "jpg"), "image/png": ("PNG", "png")}
RELEASE_AFTER_PIXELS = 4_000_000
"""A decode at least this big gives its memory back to the system when it ends."""
ACCEPTING_THREADS = 8
"""Threads checking and storing posted images at once: the rest wait without a thread, so a burst
of large images waiting for the decode budget never takes the threads the store page's routes use."""


class DecodeBudget:
    """At most ``pixels`` decoded at once over all requests; a larger image waits for room.

    Decoding a 6000×6000 PNG takes about 100 MB whatever its file size; without a bound,
    200 of them at once took gigabytes.  After a large decode the freed memory is handed
    back to the system, so a flood leaves no lasting footprint either.
    """

    def __init__(self, pixels: int) -> None:
        self.pixels = pixels
        self._free = pixels
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = min(pixels, self.pixels)
        with self._cond:
            self._cond.wait_for(lambda: self._free >= pixels)
            self._free -= pixels
        try:
            yield
        finally:
            with self._cond:
                self._free += pixels
                self._cond.notify_all()
            if pixels >= RELEASE_AFTER_PIXELS:
                release_free_memory()


class Gateway:
    """The gateway's logic, independent of HTTP (the app below is a thin shell)."""

    def __init__(
        self,
        uplink: UplinkSettings,
        images: ImageSettings,
        edge: str,
        store: ObjectStore,
        layout: Layout,
        outbox: Outbox,
        devices: Credentials,
        staff: Credentials,
        metrics: UplinkMetrics | None = None,
    ) -> None:
        """``metrics`` counts what arrives by HTTP and by MQTT alike (the intake calls this object)."""
        self.uplink = uplink
        self.max_pixels = images.max_pixels
        self.edge = check_name(edge, "edge id")
        self.store = store
        self.layout = layout
        self.outbox = outbox
        self.bucket = layout.edge_bucket(edge)
        self.devices = devices
        self.staff = staff
        self.budget = DecodeBudget(uplink.max_decode_pixels)
        self.metrics = metrics or UplinkMetrics("gateway")
        if self.metrics.backlog is not None:
            self.metrics.backlog.set_function(outbox.backlog)

    def caller(self, authorization: str | None, staff_only: bool, what: str) -> str:
        """Who calls: a member of staff, or (where allowed) a device; refused (and logged) otherwise."""
        try:
            token = bearer(authorization)
        except Unauthorized:
            log.warning("edge %s: refused %s: no token", self.edge, what)
            raise
        who = self.staff.owner(token)
        if who is not None:
            return f"staff:{who}"
        device = self.devices.owner(token)
        if device is not None and not staff_only:
            return f"device:{device}"
        if device is not None:
            log.warning("edge %s: refused %s: device %s is not staff", self.edge, what, device)
            raise Forbidden(f"{what} is for staff, not devices")
        log.warning("edge %s: refused %s: unknown token", self.edge, what)
        raise Unauthorized(f"unknown token for {what}")

    def accept_image(self, sku: str, content_type: str, data: bytes) -> tuple[Location, bool]:
        """Validate and store one image; returns where it is and whether it was new."""
        check_sku(sku)
        expected = CONTENT_TYPES.get(content_type)
        if expected is None:
            raise UnsupportedMedia("unsupported content type: post image/jpeg or image/png")
        image = open_image(data, self.max_pixels)
        fmt = image.format
        with self.budget.hold(image.size[0] * image.size[1]):
            check_decodes(data, self.max_pixels)  # every byte: truncated files fail here
        check_complete(data, self.max_pixels)  # what the core checks, so a set is never refused there
        if fmt != expected[0]:
            raise UnsupportedMedia(f"body is a {fmt} image but was posted as {content_type}")
        sha = hashlib.sha256(data).hexdigest()
        loc = self.layout.incoming_image(self.edge, sku, sha, expected[1])
        if self.store.exists(loc):
            return loc, False
        self.store.put_bytes(loc, data, content_type)
        self.outbox.spool.put(loc.key, data)
        self.metrics.images.inc()
        return loc, True

    def complete(self, sku: str) -> tuple[str, int]:
        """Close the SKU's new images, and every labelled hard example not yet sent, into a new set."""
        prefix = self.layout.incoming_prefix(self.edge, check_sku(sku))
        objects = list(self.store.list(prefix))
        known = self.outbox.known_keys(self.bucket, (o.location.key for o in objects))
        items = [self._item(o.location, o.size, INCOMING) for o in objects if o.location.key not in known]
        if not items:
            raise Conflict(f"edge {self.edge}: no new images of SKU {sku} to complete")
        result = self.outbox.complete(self.edge, [*items, *self.pending_hard_examples()])
        if result is None:  # a concurrent completion took them
            raise Conflict(f"edge {self.edge}: no new images of SKU {sku} to complete")
        self.metrics.sets.inc()
        return result

    def label_hard_example(self, day: str, capture_id: str, sku: str) -> Location:
        """Copy a capture flagged unsure under its label (the next shipped set takes it), then remove the
        capture: it leaves the review list, and a second label finds nothing to label."""
        image, record = self.layout.unrecognized(self.edge, parse_day(day), check_image_id(capture_id))
        target = self.layout.hard_example(self.edge, check_sku(sku), capture_id, "jpg")
        if not self.store.exists(image):
            raise NotFound(f"edge {self.edge}: no capture {capture_id} on {day}")
        self.store.copy(image, target)
        self.store.delete(record)
        self.store.delete(image)
        return target

    def pending_hard_examples(self) -> list[Item]:
        """Labelled hard examples not yet in any set (the next completed set takes them)."""
        objects = list(self.store.list(self.layout.hard_examples_prefix(self.edge)))
        known = self.outbox.known_keys(self.bucket, (o.location.key for o in objects))
        return [self._item(o.location, o.size, HARD_EXAMPLE) for o in objects if o.location.key not in known]

    def pending(self) -> dict[str, Any]:
        objects = list(self.store.list(self.layout.incoming_prefix(self.edge)))
        known = self.outbox.known_keys(self.bucket, (o.location.key for o in objects))
        loose: dict[str, int] = {}
        for o in objects:
            if o.location.key not in known:
                sku = o.location.key.split("/")[1]
                loose[sku] = loose.get(sku, 0) + 1
        sets = [
            {
                "set_id": s.id,
                "status": s.status,
                "attempts": s.attempts,
                "last_error": s.last_error,
                "images": self.outbox.counts(s.id),
            }
            for s in self.outbox.sets()
            if s.status != "shipped"
        ]
        return {
            "edge": self.edge,
            "not_in_a_set": loose,
            "hard_examples": len(self.pending_hard_examples()),
            "sets": sets,
        }

    def _item(self, loc: Location, size: int, kind: str) -> Item:
        """An outbox item; the sha256 is the image id for gateway uploads, else the metadata's."""
        _, sku, filename = loc.key.split("/")
        image_id, _, ext = filename.rpartition(".")
        sha = image_id if _is_sha256(image_id) else self.store.head(loc).sha256
        if not _is_sha256(sha):
            sha = hashlib.sha256(self.store.get_bytes(loc)).hexdigest()
        return Item(loc.bucket, loc.key, kind, sku, image_id, ext, sha, size)


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def create_app(gateway: Gateway, verdicts: VerdictQueue | None = None) -> FastAPI:
    """The gateway's routes: devices' images, staff's sets and labels, and the store's page.
    ``verdicts``: where staff's verdicts on alarms wait for the core (the telemetry batches)."""
    app = FastAPI(title=f"edgecore gateway ({gateway.edge})", docs_url=None, redoc_url=None)
    install_error_handlers(app, gateway.metrics)
    install_headers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "edge": gateway.edge}

    sessions = StaffSessions(gateway.staff, f"{COOKIE}_{gateway.edge}")
    allow = allow_callers(gateway, sessions)
    install_images(app, gateway, allow)
    install_staff_routes(app, gateway, allow)
    desk = ReviewDesk(gateway.edge, gateway.store, gateway.layout, gateway.outbox)
    alarms = AlarmDesk(gateway.edge, gateway.store, gateway.layout, verdicts)
    install_page(app, desk, alarms, sessions, allow)
    return app


def allow_callers(gateway: Gateway, sessions: StaffSessions) -> Allow:
    """Who may call: a bearer token when one is sent (a device or staff); else the page's session
    (staff only), which must also carry the page's header on a change."""

    def allow(request: Request, staff_only: bool, what: str) -> str:
        authorization = request.headers.get("authorization")
        if authorization is None and sessions.cookie in request.cookies:
            try:
                sessions.check_page(request.method, request.headers.get(PAGE_HEADER))
                return f"staff:{sessions.owner(request.cookies[sessions.cookie])}"
            except EdgecoreError as exc:
                log.warning("edge %s: refused %s on a session: %s", gateway.edge, what, exc)
                raise
        return sessions.bounded(
            client_address(request), lambda: gateway.caller(authorization, staff_only, what)
        )

    return allow


def install_images(app: FastAPI, gateway: Gateway, allow: Allow) -> None:
    """Posting an image (devices and staff), and closing a SKU's new images into a set (staff)."""
    limit = gateway.uplink.max_image_bytes
    accepting = anyio.CapacityLimiter(ACCEPTING_THREADS)  # uploads waiting for the decode budget wait here

    @app.post("/v1/images/{sku}")
    async def post_image(sku: str, request: Request) -> JSONResponse:
        allow(request, False, "posting an image")
        check_sku(sku)
        content_type = media_type(request)
        if content_type not in CONTENT_TYPES:
            raise UnsupportedMedia("unsupported content type: post image/jpeg or image/png")
        data = await read_bounded(request, limit, "image")
        loc, created = await anyio.to_thread.run_sync(
            gateway.accept_image, sku, content_type, data, limiter=accepting
        )
        image_id = loc.key.rsplit("/", 1)[1].rsplit(".", 1)[0]
        body = {"sku": sku, "image_id": image_id, "key": loc.key, "created": created}
        return JSONResponse(body, 201 if created else 200)

    @app.post("/v1/sets/{sku}/complete")
    async def complete(sku: str, request: Request) -> JSONResponse:
        allow(request, True, "completing a set")
        set_id, images = await run_in_threadpool(gateway.complete, check_sku(sku))
        return JSONResponse({"set_id": set_id, "sku": sku, "images": images}, 202)


def install_staff_routes(app: FastAPI, gateway: Gateway, allow: Allow) -> None:
    """Labelling a capture as a hard example, and what has not shipped yet (staff only)."""

    @app.post("/v1/hard-examples")
    async def hard_example(request: Request) -> JSONResponse:
        allow(request, True, "labelling a hard example")
        if media_type(request) != "application/json":
            raise UnsupportedMedia("post the label as application/json")
        raw = await read_bounded(request, MAX_JSON_BYTES, "label")
        try:
            body = json.loads(raw)
            day, capture_id, sku = str(body["day"]), str(body["capture_id"]), str(body["sku"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput('expected {"day": "YYYY-MM-DD", "capture_id": ..., "sku": ...}') from exc
        loc = await run_in_threadpool(gateway.label_hard_example, day, capture_id, sku)
        return JSONResponse({"key": loc.key, "sku": sku}, 201)

    @app.get("/v1/pending")
    async def pending(request: Request) -> dict[str, Any]:
        allow(request, True, "reading what is pending")
        return await run_in_threadpool(gateway.pending)
