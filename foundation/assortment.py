"""What an edge sells: its catalogue, changed only on purpose, every change recorded.

A model is trained for its edge's catalogue, so a catalogue that shrinks by accident
makes a model that forgets products the store still sells.  Hence the only two
changes: adding (or editing) products merges them into the catalogue, and never drops
one; retiring products is its own call, named by SKU.  Both leave a record (who, when,
why) that training (which products may leave the model) and people read back.

There are two copies (``foundation.layout.CatalogueHome``): the store's own, in its edge
bucket, which its staff change; and the core's, which training reads.  Every set a
store ships carries its catalogue and when each product last changed there
(:class:`ShippedCatalogue`); the core merges it into its copy product by product, the
later change winning (:func:`merge_shipped`), so a product added at the store reaches
training and one retired at the core is not brought back by an older store catalogue.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from foundation.catalogue import Catalogue, Product
from foundation.errors import InvalidInput, NotFound
from foundation.layout import CatalogueHome, check_name, check_sku
from foundation.storage.objects import ObjectReader, ObjectStorage

MAX_CATALOGUE_BYTES = 1_048_576
MAX_CHANGE_BYTES = 64 * 1024
NEVER = datetime(1970, 1, 1, tzinfo=UTC)
"""When a product in a catalogue without records last changed: before anything recorded."""

Action = Literal["add", "retire"]


class CatalogueChange(BaseModel):
    """One recorded change: products added (or edited) or retired, by whom and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    edge: str
    action: Action
    skus: list[str] = Field(min_length=1)
    by: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=500)
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class ShippedCatalogue(BaseModel):
    """What a set carries about the store's catalogue: the catalogue, and each SKU's last change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    catalogue: Catalogue
    last_changes: dict[str, tuple[Action, AwareDatetime]] = Field(default_factory=dict)  # naive: 4xx

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes, edge: str) -> ShippedCatalogue:
        try:
            shipped = cls.model_validate_json(raw)
        except ValidationError as exc:  # the reason, never the payload
            raise InvalidInput(f"invalid catalogue of edge {edge}: {exc.error_count()} error(s)") from exc
        if shipped.catalogue.edge != edge:
            raise InvalidInput(f"the set's catalogue is edge {shipped.catalogue.edge!r}'s, not {edge!r}")
        return shipped


def read_catalogue(reader: ObjectReader, home: CatalogueHome) -> Catalogue | None:
    """The catalogue kept at ``home``, or None where there is none yet."""
    try:
        catalogue = Catalogue.from_bytes(reader.get_bytes(home.catalogue, max_bytes=MAX_CATALOGUE_BYTES))
    except NotFound:
        return None
    if catalogue.edge != home.edge:
        raise InvalidInput(
            f"{home.catalogue.uri} is the catalogue of edge {catalogue.edge!r}, not {home.edge!r}"
        )
    return catalogue


def add_products(
    store: ObjectStorage, home: CatalogueHome, products: list[Product], by: str, at: datetime | None = None
) -> tuple[Catalogue, list[str]]:
    """Merge ``products`` into the catalogue (new SKUs added, known ones updated); returns it and the
    SKUs it did not hold before.  Nothing the edge sells is dropped, whatever ``products`` lacks."""
    check_name(home.edge, "edge id")
    current = read_catalogue(store, home)
    merged = current.merged(products) if current else Catalogue(edge=home.edge, products=products)
    added = sorted(set(merged.skus) - set(current.skus if current else []))
    if current is None or merged != current:
        change = CatalogueChange(edge=home.edge, action="add", skus=[p.sku for p in products], by=by)
        _record(store, home, change.model_copy(update={"at": at}) if at else change)
        store.put_bytes(home.catalogue, merged.to_bytes(), "application/json")
    return merged, added


def retire_products(
    store: ObjectStorage,
    home: CatalogueHome,
    skus: list[str],
    by: str,
    reason: str = "",
    at: datetime | None = None,
) -> Catalogue:
    """Take products out of the catalogue on purpose; the edge's next model may then forget them."""
    current = read_catalogue(store, home)
    if current is None:
        raise NotFound(f"edge {home.edge} has no catalogue")
    unknown = sorted(set(map(check_sku, skus)) - set(current.skus))
    if unknown:
        raise InvalidInput(f"edge {home.edge} does not sell {unknown}")
    remaining = current.without(skus)
    change = CatalogueChange(edge=home.edge, action="retire", skus=sorted(skus), by=by, reason=reason)
    _record(store, home, change.model_copy(update={"at": at}) if at else change)
    store.put_bytes(home.catalogue, remaining.to_bytes(), "application/json")
    return remaining


def changes(reader: ObjectReader, home: CatalogueHome) -> list[CatalogueChange]:
    """Every recorded change of the catalogue, oldest first."""
    try:
        objects = list(reader.list(home.changes))
    except NotFound:
        return []
    found = [
        CatalogueChange.model_validate_json(reader.get_bytes(o.location, max_bytes=MAX_CHANGE_BYTES))
        for o in objects
    ]
    return sorted(found, key=lambda change: change.at)


def last_changes(reader: ObjectReader, home: CatalogueHome) -> dict[str, tuple[Action, datetime]]:
    """Each SKU's latest recorded change: what it was, and when."""
    state: dict[str, tuple[Action, datetime]] = {}
    for change in changes(reader, home):
        for sku in change.skus:
            state[sku] = (change.action, change.at)
    return state


def retired_skus(reader: ObjectReader, home: CatalogueHome) -> list[str]:
    """SKUs retired on purpose and not added back since: the only products a model may forget."""
    return sorted(sku for sku, (action, _) in last_changes(reader, home).items() if action == "retire")


def shipped(reader: ObjectReader, home: CatalogueHome) -> ShippedCatalogue | None:
    """The store's catalogue as a set carries it (None where the store has none)."""
    catalogue = read_catalogue(reader, home)
    return (
        None
        if catalogue is None
        else ShippedCatalogue(catalogue=catalogue, last_changes=last_changes(reader, home))
    )


def merge_shipped(
    store: ObjectStorage, home: CatalogueHome, incoming: ShippedCatalogue, by: str
) -> list[str]:
    """Bring the core's copy up to a store's catalogue, product by product, the later change winning.

    A product the store added (or edited) after the core last changed it is added at the
    core; one the store retired after the core last changed it is retired at the core;
    each keeps the store's time, so shipping the same catalogue again changes nothing.
    Returns the SKUs changed.
    """
    core = last_changes(store, home)
    current = read_catalogue(store, home)
    held = set(current.skus) if current else set()
    added, retired = [], []
    for product in incoming.catalogue.products:
        _, at = incoming.last_changes.get(product.sku, ("add", NEVER))
        newer = product.sku not in core or at > core[product.sku][1]
        if newer and (product.sku not in held or (current and current.product(product.sku) != product)):
            added.append((product, at))
    for sku, (action, at) in incoming.last_changes.items():
        if action == "retire" and sku in held and (sku not in core or at > core[sku][1]):
            retired.append((sku, at))
    by_time: dict[datetime, list[Product]] = {}
    for product, at in added:
        by_time.setdefault(at, []).append(product)
    for at, products in sorted(by_time.items()):
        add_products(store, home, products, by, at=at if at > NEVER else None)
    for sku, at in retired:
        if len(read_catalogue(store, home).skus) > 1:  # type: ignore[union-attr]
            retire_products(store, home, [sku], by, reason="retired at the store", at=at)
    return sorted([p.sku for p, _ in added] + [sku for sku, _ in retired])


def _record(store: ObjectStorage, home: CatalogueHome, change: CatalogueChange) -> None:
    stamp = change.at.strftime("%Y%m%dT%H%M%S%fZ")
    store.put_bytes(
        home.change(f"{stamp}-{uuid.uuid4().hex[:8]}"),
        json.dumps(change.model_dump(mode="json")).encode(),
        "application/json",
    )
