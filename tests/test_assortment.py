"""What an edge sells changes only on purpose: uploads add, retiring is explicit, both are recorded."""

from __future__ import annotations

import pytest

from edgecore.synthetic.products import BOUTIQUE, demo_catalogue, new_product
from foundation.assortment import add_products, changes, read_catalogue, retire_products, retired_skus
from foundation.errors import InvalidInput, NotFound
from foundation.layout import Layout
from foundation.storage.store import ObjectStore


@pytest.fixture
def boutique(iso_store: ObjectStore, iso_layout: Layout) -> list[str]:
    iso_store.ensure_bucket(iso_layout.edge_bucket(BOUTIQUE))
    catalogue, _ = add_products(iso_store, iso_layout, BOUTIQUE, demo_catalogue(BOUTIQUE).products, "test")
    return catalogue.skus


def test_an_upload_holding_only_new_products_keeps_every_product_the_edge_sells(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    merged, added = add_products(iso_store, iso_layout, BOUTIQUE, [new_product()], "test")
    assert added == [new_product().sku]
    assert merged.skus == sorted([*boutique, new_product().sku])
    assert read_catalogue(iso_store, iso_layout, BOUTIQUE) == merged


def test_an_upload_of_a_known_product_updates_it_without_adding_a_record_when_nothing_changed(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    before = len(changes(iso_store, iso_layout, BOUTIQUE))
    same = demo_catalogue(BOUTIQUE).products[:2]
    _, added = add_products(iso_store, iso_layout, BOUTIQUE, same, "test")
    assert added == [] and len(changes(iso_store, iso_layout, BOUTIQUE)) == before
    renamed = same[0].model_copy(update={"name": "A new name"})
    catalogue, _ = add_products(iso_store, iso_layout, BOUTIQUE, [renamed], "test")
    assert catalogue.product(renamed.sku).name == "A new name" and catalogue.skus == boutique


def test_retiring_a_product_removes_it_and_records_who_and_why(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    gone = boutique[0]
    remaining = retire_products(iso_store, iso_layout, BOUTIQUE, [gone], by="ops", reason="delisted")
    assert gone not in remaining.skus and len(remaining.skus) == len(boutique) - 1
    last = changes(iso_store, iso_layout, BOUTIQUE)[-1]
    assert (last.action, last.skus, last.by, last.reason) == ("retire", [gone], "ops", "delisted")
    assert retired_skus(iso_store, iso_layout, BOUTIQUE) == [gone]


def test_a_retired_product_added_back_is_no_longer_retired(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    gone = demo_catalogue(BOUTIQUE).product(boutique[0])
    retire_products(iso_store, iso_layout, BOUTIQUE, [gone.sku], by="ops")
    add_products(iso_store, iso_layout, BOUTIQUE, [gone], "ops")
    assert retired_skus(iso_store, iso_layout, BOUTIQUE) == []


def test_retiring_a_product_the_edge_does_not_sell_is_refused(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    with pytest.raises(InvalidInput, match="does not sell"):
        retire_products(iso_store, iso_layout, BOUTIQUE, ["NO-SUCH-SKU"], by="ops")
    assert read_catalogue(iso_store, iso_layout, BOUTIQUE).skus == boutique  # type: ignore[union-attr]


def test_retiring_every_product_is_refused(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        retire_products(iso_store, iso_layout, BOUTIQUE, boutique, by="ops")


def test_an_edge_without_a_catalogue_has_nothing_to_retire(
    iso_store: ObjectStore, iso_layout: Layout
) -> None:
    iso_store.ensure_bucket(iso_layout.edge_bucket("empty-edge"))
    assert read_catalogue(iso_store, iso_layout, "empty-edge") is None
    with pytest.raises(NotFound):
        retire_products(iso_store, iso_layout, "empty-edge", ["X"], by="ops")
