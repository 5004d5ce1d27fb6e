"""What an edge sells: its catalogue in the edge bucket, changed only on purpose, every change recorded.

A model is trained for its edge's catalogue, so a catalogue that shrinks by accident
makes a model that forgets products the store still sells.  Hence the only two
changes: adding (or editing) products merges them into the catalogue, and never drops
one; retiring products is its own call, named by SKU, and both leave a record under
``catalogue-changes/`` that training (which products may leave the model) and people
(who changed what, when) read back.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from foundation.catalogue import Catalogue, Product
from foundation.errors import InvalidInput, NotFound
from foundation.layout import Layout, check_name, check_sku
from foundation.storage.objects import ObjectReader, ObjectStorage

MAX_CATALOGUE_BYTES = 1_048_576
MAX_CHANGE_BYTES = 64 * 1024


class CatalogueChange(BaseModel):
    """One recorded change: products added (or edited) or retired, by whom and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    edge: str
    action: Literal["add", "retire"]
    skus: list[str] = Field(min_length=1)
    by: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=500)
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def read_catalogue(reader: ObjectReader, layout: Layout, edge: str) -> Catalogue | None:
    """The edge's catalogue, or None for an edge that has none yet."""
    loc = layout.edge_catalogue(edge)
    try:
        catalogue = Catalogue.from_bytes(reader.get_bytes(loc, max_bytes=MAX_CATALOGUE_BYTES))
    except NotFound:
        return None
    if catalogue.edge != edge:
        raise InvalidInput(f"{loc.uri} is the catalogue of edge {catalogue.edge!r}, not {edge!r}")
    return catalogue


def add_products(
    store: ObjectStorage, layout: Layout, edge: str, products: list[Product], by: str
) -> tuple[Catalogue, list[str]]:
    """Merge ``products`` into the catalogue (new SKUs added, known ones updated); returns it and the
    SKUs it did not hold before.  Nothing the edge sells is dropped, whatever ``products`` lacks."""
    check_name(edge, "edge id")
    current = read_catalogue(store, layout, edge)
    merged = current.merged(products) if current else Catalogue(edge=edge, products=products)
    added = sorted(set(merged.skus) - set(current.skus if current else []))
    if current is None or merged != current:
        _record(
            store, layout, CatalogueChange(edge=edge, action="add", skus=[p.sku for p in products], by=by)
        )
        store.put_bytes(layout.edge_catalogue(edge), merged.to_bytes(), "application/json")
    return merged, added


def retire_products(
    store: ObjectStorage, layout: Layout, edge: str, skus: list[str], by: str, reason: str = ""
) -> Catalogue:
    """Take products out of the edge's catalogue on purpose; its next model may then forget them."""
    current = read_catalogue(store, layout, edge)
    if current is None:
        raise NotFound(f"edge {edge} has no catalogue")
    unknown = sorted(set(map(check_sku, skus)) - set(current.skus))
    if unknown:
        raise InvalidInput(f"edge {edge} does not sell {unknown}")
    remaining = current.without(skus)
    _record(
        store, layout, CatalogueChange(edge=edge, action="retire", skus=sorted(skus), by=by, reason=reason)
    )
    store.put_bytes(layout.edge_catalogue(edge), remaining.to_bytes(), "application/json")
    return remaining


def changes(reader: ObjectReader, layout: Layout, edge: str) -> list[CatalogueChange]:
    """Every recorded change of the edge's catalogue, oldest first."""
    try:
        objects = list(reader.list(layout.catalogue_changes_prefix(edge)))
    except NotFound:
        return []
    found = [
        CatalogueChange.model_validate_json(reader.get_bytes(o.location, max_bytes=MAX_CHANGE_BYTES))
        for o in objects
    ]
    return sorted(found, key=lambda change: change.at)


def retired_skus(reader: ObjectReader, layout: Layout, edge: str) -> list[str]:
    """SKUs retired on purpose and not added back since: the only products a model may forget."""
    state: dict[str, str] = {}
    for change in changes(reader, layout, edge):
        for sku in change.skus:
            state[sku] = change.action
    return sorted(sku for sku, action in state.items() if action == "retire")


def _record(store: ObjectStorage, layout: Layout, change: CatalogueChange) -> None:
    stamp = change.at.strftime("%Y%m%dT%H%M%S%fZ")
    loc = layout.catalogue_change(change.edge, f"{stamp}-{uuid.uuid4().hex[:8]}")
    store.put_bytes(loc, json.dumps(change.model_dump(mode="json")).encode(), "application/json")
