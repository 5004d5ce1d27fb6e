"""What an edge sells changes only on purpose: uploads add, retiring is explicit, both are recorded."""

from __future__ import annotations

import pytest

from edgecore.synthetic.products import BOUTIQUE, demo_catalogue, new_product
from foundation.assortment import (
    ShippedCatalogue,
    add_products,
    changes,
    merge_shipped,
    read_catalogue,
    retire_products,
    retired_skus,
    shipped,
)
from foundation.errors import InvalidInput, NotFound
from foundation.layout import CatalogueHome, Layout
from foundation.storage.store import ObjectStore


def home(layout: Layout) -> CatalogueHome:
    return layout.edge_catalogue_home(BOUTIQUE)


@pytest.fixture
def boutique(iso_store: ObjectStore, iso_layout: Layout) -> list[str]:
    iso_store.ensure_bucket(iso_layout.edge_bucket(BOUTIQUE))
    catalogue, _ = add_products(iso_store, home(iso_layout), demo_catalogue(BOUTIQUE).products, "test")
    return catalogue.skus


def test_an_upload_holding_only_new_products_keeps_every_product_the_edge_sells(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    merged, added = add_products(iso_store, home(iso_layout), [new_product()], "test")
    assert added == [new_product().sku]
    assert merged.skus == sorted([*boutique, new_product().sku])
    assert read_catalogue(iso_store, home(iso_layout)) == merged


def test_an_upload_of_a_known_product_updates_it_without_adding_a_record_when_nothing_changed(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    before = len(changes(iso_store, home(iso_layout)))
    same = demo_catalogue(BOUTIQUE).products[:2]
    _, added = add_products(iso_store, home(iso_layout), same, "test")
    assert added == [] and len(changes(iso_store, home(iso_layout))) == before
    renamed = same[0].model_copy(update={"name": "A new name"})
    catalogue, _ = add_products(iso_store, home(iso_layout), [renamed], "test")
    assert catalogue.product(renamed.sku).name == "A new name" and catalogue.skus == boutique


def test_retiring_a_product_removes_it_and_records_who_and_why(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    gone = boutique[0]
    remaining = retire_products(iso_store, home(iso_layout), [gone], by="ops", reason="delisted")
    assert gone not in remaining.skus and len(remaining.skus) == len(boutique) - 1
    last = changes(iso_store, home(iso_layout))[-1]
    assert (last.action, last.skus, last.by, last.reason) == ("retire", [gone], "ops", "delisted")
    assert retired_skus(iso_store, home(iso_layout)) == [gone]


def test_a_retired_product_added_back_is_no_longer_retired(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    gone = demo_catalogue(BOUTIQUE).product(boutique[0])
    retire_products(iso_store, home(iso_layout), [gone.sku], by="ops")
    add_products(iso_store, home(iso_layout), [gone], "ops")
    assert retired_skus(iso_store, home(iso_layout)) == []


def test_retiring_a_product_the_edge_does_not_sell_is_refused(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    with pytest.raises(InvalidInput, match="does not sell"):
        retire_products(iso_store, home(iso_layout), ["NO-SUCH-SKU"], by="ops")
    assert read_catalogue(iso_store, home(iso_layout)).skus == boutique  # type: ignore[union-attr]


def test_retiring_every_product_is_refused(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        retire_products(iso_store, home(iso_layout), boutique, by="ops")


def test_an_edge_without_a_catalogue_has_nothing_to_retire(
    iso_store: ObjectStore, iso_layout: Layout
) -> None:
    iso_store.ensure_bucket(iso_layout.edge_bucket("empty-edge"))
    assert read_catalogue(iso_store, iso_layout.edge_catalogue_home("empty-edge")) is None
    with pytest.raises(NotFound):
        retire_products(iso_store, iso_layout.edge_catalogue_home("empty-edge"), ["X"], by="ops")


def test_a_product_the_store_added_reaches_the_core_copy_and_shipping_it_again_changes_nothing(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    core = iso_layout.core_catalogue_home(BOUTIQUE)
    iso_store.ensure_bucket(iso_layout.training_bucket)
    add_products(iso_store, home(iso_layout), [new_product()], "store staff")
    shipped_catalogue = shipped(iso_store, home(iso_layout))
    assert shipped_catalogue is not None

    first = merge_shipped(iso_store, core, shipped_catalogue, "edge boutique")
    again = merge_shipped(iso_store, core, shipped_catalogue, "edge boutique")

    assert new_product().sku in first and again == []
    assert read_catalogue(iso_store, core).skus == sorted([*boutique, new_product().sku])  # type: ignore[union-attr]


def test_a_product_retired_at_the_core_is_not_brought_back_by_an_older_store_catalogue(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    core = iso_layout.core_catalogue_home(BOUTIQUE)
    iso_store.ensure_bucket(iso_layout.training_bucket)
    older = shipped(iso_store, home(iso_layout))
    assert older is not None
    merge_shipped(iso_store, core, older, "edge boutique")
    retire_products(iso_store, core, [boutique[0]], by="head office")

    merge_shipped(iso_store, core, older, "edge boutique")

    assert boutique[0] not in read_catalogue(iso_store, core).skus  # type: ignore[union-attr]


def test_a_product_the_store_retired_later_is_retired_at_the_core(
    iso_store: ObjectStore, iso_layout: Layout, boutique: list[str]
) -> None:
    core = iso_layout.core_catalogue_home(BOUTIQUE)
    iso_store.ensure_bucket(iso_layout.training_bucket)
    merge_shipped(iso_store, core, shipped(iso_store, home(iso_layout)), "edge boutique")  # type: ignore[arg-type]
    retire_products(iso_store, home(iso_layout), [boutique[1]], by="store staff", reason="delisted")

    changed = merge_shipped(iso_store, core, shipped(iso_store, home(iso_layout)), "edge boutique")  # type: ignore[arg-type]

    assert changed == [boutique[1]]
    assert retired_skus(iso_store, core) == [boutique[1]]


def test_a_shipped_catalogue_whose_change_times_carry_no_time_zone_is_refused() -> None:
    catalogue = demo_catalogue(BOUTIQUE)
    sku = catalogue.skus[0]
    raw = (
        b'{"catalogue": ' + catalogue.to_bytes() + b', "last_changes": {"' + sku.encode() + b'": '
        b'["add", "2026-01-01T00:00:00"]}}'
    )
    with pytest.raises(InvalidInput, match="invalid catalogue"):
        ShippedCatalogue.from_bytes(raw, BOUTIQUE)
