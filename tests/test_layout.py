"""The S3 layout builds every key from validated parts."""

from __future__ import annotations

from datetime import date

import pytest

from foundation.errors import InvalidInput
from foundation.layout import Layout, edge_model_name, format_version, parse_version, version_of_key


def test_dataset_images_and_manifest_live_under_the_version_prefix(layout: Layout) -> None:
    img = layout.dataset_image("hypermarket", "v000003", "MILK-1L", "a" * 64, "jpeg")
    assert img.bucket == layout.training_bucket
    assert img.key == f"datasets/hypermarket/v000003/images/MILK-1L/{'a' * 64}.jpg"
    assert (
        layout.dataset_manifest("hypermarket", "v000003").key == "datasets/hypermarket/v000003/manifest.json"
    )


def test_model_registry_and_edge_copies_share_the_same_relative_layout(layout: Layout) -> None:
    model = edge_model_name("boutique")
    reg = layout.model_file(model, "v000001", "saved_model/variables/variables.index")
    edge = layout.edge_model_prefix("boutique", model, "v000001")
    assert (
        reg.uri
        == f"s3://{layout.models_bucket}/models/boutique-products/v000001/saved_model/variables/variables.index"
    )
    assert edge.bucket == "edgecore-edge-boutique" and edge.key == "models/boutique-products/v000001/"


def test_unrecognized_captures_are_grouped_by_day(layout: Layout) -> None:
    image, record = layout.unrecognized("boutique", date(2026, 11, 23), "c1")
    assert (image.key, record.key) == ("unrecognized/2026-11-23/c1.jpg", "unrecognized/2026-11-23/c1.json")


@pytest.mark.parametrize(
    "call",
    [
        lambda lay: lay.edge_bucket("../etc"),
        lambda lay: lay.edge_bucket("UPPER"),
        lambda lay: lay.incoming_image("store-1", "milk/../../x", "1", "jpg"),
        lambda lay: lay.incoming_image("store-1", "MILK-1L", "../1", "jpg"),
        lambda lay: lay.incoming_image("store-1", "MILK-1L", "1", "exe"),
        lambda lay: lay.dataset_prefix("store-1", "7"),
        lambda lay: lay.model_file("m", "v000001", "../../secret"),
        lambda lay: lay.model_file("m", "v000001", "/abs"),
    ],
    ids=[
        "dotdot-edge",
        "uppercase-edge",
        "traversal-sku",
        "traversal-id",
        "bad-ext",
        "bad-version",
        "traversal-file",
        "absolute-file",
    ],
)
def test_unsafe_or_malformed_parts_are_rejected(layout: Layout, call) -> None:
    with pytest.raises(InvalidInput):
        call(layout)


def test_versions_sort_lexically_in_numeric_order() -> None:
    versions = [format_version(n) for n in (10, 2, 100, 1)]
    assert sorted(versions) == [format_version(n) for n in (1, 2, 10, 100)]
    assert parse_version("v000042") == 42
    assert version_of_key("models/m/v000042/manifest.json", "models/m/") == "v000042"


def test_a_shard_and_the_files_a_manifest_lists_live_under_the_version_prefix(layout: Layout) -> None:
    shard = layout.shard_path("0123456789abcdef0123456789abcdef")
    assert shard == "shards/0123456789abcdef0123456789abcdef.tar"
    loc = layout.dataset_file("store-1", "v000002", shard)
    assert loc.key == f"datasets/store-1/v000002/{shard}"
    for bad in ("../x", "0123", "0123456789ABCDEF0123456789ABCDEF"):
        with pytest.raises(InvalidInput):
            layout.shard_path(bad)
    with pytest.raises(InvalidInput):
        layout.dataset_file("store-1", "v000002", "../other/v000001/manifest.json")
