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
bomb guard), the SKU and every other name that reaches an object key.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from edge_sync.uplink.http import install_error_handlers, media_type, read_bounded
from edge_sync.uplink.outbox import HARD_EXAMPLE, INCOMING, Item, Outbox
from foundation.errors import Conflict, InvalidInput, NotFound, UnsupportedMedia
from foundation.layout import Layout, Location, check_image_id, check_name, check_sku
from foundation.preprocessing import decode, open_image
from foundation.settings import ImageSettings, UplinkSettings
from foundation.storage.store import ObjectStore

CONTENT_TYPES = {"image/jpeg": ("JPEG", "jpg"), "image/png": ("PNG", "png")}
MAX_JSON_BYTES = 4096


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
    ) -> None:
        self.uplink = uplink
        self.max_pixels = images.max_pixels
        self.edge = check_name(edge, "edge id")
        self.store = store
        self.layout = layout
        self.outbox = outbox
        self.bucket = layout.edge_bucket(edge)

    def accept_image(self, sku: str, content_type: str, data: bytes) -> tuple[Location, bool]:
        """Validate and store one image; returns where it is and whether it was new."""
        check_sku(sku)
        expected = CONTENT_TYPES.get(content_type)
        if expected is None:
            raise UnsupportedMedia(f"content type {content_type!r}: post image/jpeg or image/png")
        fmt = open_image(data, self.max_pixels).format
        decode(data, self.max_pixels)  # every pixel: truncated files fail here
        if fmt != expected[0]:
            raise UnsupportedMedia(f"body is a {fmt} image but was posted as {content_type}")
        sha = hashlib.sha256(data).hexdigest()
        loc = self.layout.incoming_image(self.edge, sku, sha, expected[1])
        if self.store.exists(loc):
            return loc, False
        self.store.put_bytes(loc, data, content_type)
        self.outbox.spool.put(loc.key, data)
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
        return result

    def label_hard_example(self, day: str, capture_id: str, sku: str) -> Location:
        """Copy a low-confidence capture under its label; the next shipped set takes it."""
        try:
            when = date.fromisoformat(day)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"invalid capture day {day!r}: use YYYY-MM-DD") from exc
        image, _ = self.layout.unrecognized(self.edge, when, check_image_id(capture_id))
        target = self.layout.hard_example(self.edge, check_sku(sku), capture_id, "jpg")
        if not self.store.exists(image):
            raise NotFound(f"edge {self.edge}: no capture {capture_id} on {day}")
        self.store.copy(image, target)
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


def create_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(title=f"edgecore gateway ({gateway.edge})", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    limit = gateway.uplink.max_image_bytes

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "edge": gateway.edge}

    @app.post("/v1/images/{sku}")
    async def post_image(sku: str, request: Request) -> JSONResponse:
        check_sku(sku)
        content_type = media_type(request)
        if content_type not in CONTENT_TYPES:
            raise UnsupportedMedia(f"content type {content_type!r}: post image/jpeg or image/png")
        data = await read_bounded(request, limit, "image")
        loc, created = await run_in_threadpool(gateway.accept_image, sku, content_type, data)
        image_id = loc.key.rsplit("/", 1)[1].rsplit(".", 1)[0]
        body = {"sku": sku, "image_id": image_id, "key": loc.key, "created": created}
        return JSONResponse(body, 201 if created else 200)

    @app.post("/v1/sets/{sku}/complete")
    async def complete(sku: str) -> JSONResponse:
        set_id, images = await run_in_threadpool(gateway.complete, check_sku(sku))
        return JSONResponse({"set_id": set_id, "sku": sku, "images": images}, 202)

    @app.post("/v1/hard-examples")
    async def hard_example(request: Request) -> JSONResponse:
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
    async def pending() -> dict[str, Any]:
        return await run_in_threadpool(gateway.pending)

    return app
