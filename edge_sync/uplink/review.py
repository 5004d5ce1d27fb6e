"""The staff's review desk: what the store's page shows and changes, independent of HTTP.

Serving keeps every photo its model was unsure of, with its prediction record
(``unrecognized/<day>/<capture>.jpg|json``, ``serving.capture``).  Staff confirm one of
the model's guesses or pick another product (the gateway turns it into a hard example,
which the next set ships, and removes the capture), or discard it (both objects deleted:
a photo of nothing useful never reaches training).  So what waits is only what nobody has
looked at, and the list reads the newest days first, stopping once it has a page and a
bounded count.

Products are added or edited through ``foundation.assortment`` (recorded, never
dropping one); retiring a product stays the back office's explicit command.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from edge_sync.uplink.outbox import Outbox, OutboxSet
from foundation.assortment import add_products, read_catalogue
from foundation.catalogue import Catalogue, Product
from foundation.errors import EdgecoreError, InvalidInput, NotFound
from foundation.layout import Layout, Location, check_image_id, check_name
from foundation.storage.store import ObjectStore

log = logging.getLogger(__name__)
MAX_RECORD_BYTES = 64 * 1024
MAX_IMAGE_BYTES = 32 * 1024 * 1024
PAGE_SIZE = 48
"""Captures shown at once: a tablet's screenful or two, and one small read each."""
SHIPPED_SHOWN = 20
WAITING_COUNTED = 1000
"""Captures counted for "how many wait"; beyond it the page says "1000+"."""


@dataclass(frozen=True)
class Guess:
    sku: str
    name: str
    probability: float


@dataclass(frozen=True)
class Unsure:
    """One photo the model was unsure of, as the page shows it."""

    day: str
    capture_id: str
    captured_at: str
    model_version: str
    guesses: list[Guess]

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "capture_id": self.capture_id,
            "captured_at": self.captured_at,
            "model_version": self.model_version,
            "guesses": [g.__dict__ for g in self.guesses],
        }


class ReviewDesk:
    """One store's unsure photos, catalogue and shipments."""

    def __init__(self, edge: str, store: ObjectStore, layout: Layout, outbox: Outbox) -> None:
        self.edge = check_name(edge, "edge id")
        self.store = store
        self.layout = layout
        self.outbox = outbox
        self.home = layout.edge_catalogue_home(edge)

    def unsure(self, limit: int = PAGE_SIZE) -> tuple[list[Unsure], int]:
        """The newest ``limit`` photos still to review, and how many wait (at most ``WAITING_COUNTED``)."""
        limit = max(0, min(limit, PAGE_SIZE))
        shown: list[Unsure] = []
        waiting = 0
        for day in sorted(self.store.list_prefixes(self.layout.unrecognized_prefix(self.edge)), reverse=True):
            keys = [
                o.location.key for o in self.store.list(Location(self.layout.edge_bucket(self.edge), day))
            ]
            records = sorted((k for k in keys if k.endswith(".json")), reverse=True)  # <HHMMSSffffff>-…
            for key in records:
                if len(shown) < limit and (found := self._read(key)) is not None:
                    shown.append(found)
                waiting += 1
            if waiting >= WAITING_COUNTED:
                break
        return shown, min(waiting, WAITING_COUNTED)

    def image(self, day: str, capture_id: str) -> bytes:
        image, _ = self.layout.unrecognized(self.edge, parse_day(day), check_image_id(capture_id))
        if not self.store.exists(image):
            raise NotFound(f"edge {self.edge}: no capture {capture_id} on {day}")
        return self.store.get_bytes(image, max_bytes=MAX_IMAGE_BYTES)

    def discard(self, day: str, capture_id: str, by: str) -> None:
        """Drop a capture nobody should train on.  The record goes first (serving writes it last, so the
        list never shows a capture without its image); a capture whose image outlived a failed discard
        is still discardable."""
        image, record = self.layout.unrecognized(self.edge, parse_day(day), check_image_id(capture_id))
        if not self.store.exists(record) and not self.store.exists(image):
            raise NotFound(f"edge {self.edge}: no capture {capture_id} on {day}")
        self.store.delete(record)
        self.store.delete(image)
        log.info("edge %s: capture %s/%s discarded by %s", self.edge, day, capture_id, by)

    def catalogue(self) -> Catalogue | None:
        return read_catalogue(self.store, self.home)

    def save_product(self, sku: str, body: dict[str, Any], by: str) -> tuple[Product, bool]:
        """Add a product, or edit the one with this SKU; True when it is new to the store."""
        try:
            price = Decimal(str(body.get("price", "")))
            product = Product(sku=sku, name=str(body.get("name", "")).strip(), price=price)
        except (InvalidOperation, ValueError, ValidationError) as exc:
            raise InvalidInput("a product needs a name (1–120 characters) and a price such as 2.49") from exc
        _, added = add_products(self.store, self.home, [product], by=by)
        return product, sku in added

    def shipments(self) -> dict[str, Any]:
        """Sets queued to ship (with their last error) and the latest shipped, newest first."""
        sets = sorted(self.outbox.sets(), key=lambda s: s.created, reverse=True)
        queued = [self._set(s) for s in sets if s.status != "shipped"]
        shipped = [self._set(s) for s in sets if s.status == "shipped"][:SHIPPED_SHOWN]
        return {"edge": self.edge, "queued": queued, "shipped": shipped}

    def _set(self, s: OutboxSet) -> dict[str, Any]:
        return {
            "set_id": s.id,
            "status": s.status,
            "created": s.created,
            "attempts": s.attempts,
            "last_error": s.last_error,
            "version": s.version,
            "images": self.outbox.counts(s.id),
        }

    def _read(self, key: str) -> Unsure | None:
        """One prediction record; a damaged one is skipped (and logged), never shown half."""
        day, _, name = key.removeprefix("unrecognized/").partition("/")
        try:
            _, record_loc = self.layout.unrecognized(self.edge, parse_day(day), name.removesuffix(".json"))
            record = json.loads(self.store.get_bytes(record_loc, max_bytes=MAX_RECORD_BYTES))
            prediction = record["prediction"]
            guesses = [
                Guess(str(t["sku"]), str(t.get("name", t["sku"])), float(t["probability"]))
                for t in prediction["top"]
            ]
            return Unsure(
                day,
                name.removesuffix(".json"),
                str(record.get("captured_at", "")),
                str(record.get("model_version", "")),
                guesses,
            )
        except (ValueError, KeyError, TypeError, EdgecoreError) as exc:  # vanished, too large, a stray key
            log.warning(
                "edge %s: skipped the unreadable capture record %s: %s", self.edge, key, type(exc).__name__
            )
            return None


def parse_day(day: str, what: str = "a capture day") -> date:
    """A day of a key (``unrecognized/<day>/``, ``anomalies/<machine>/<day>/``) as a request names it;
    anything else is the caller's mistake, refused before it reaches a key."""
    try:
        return date.fromisoformat(day)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} is YYYY-MM-DD") from exc
