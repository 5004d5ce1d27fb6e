"""The test session removes the buckets its tests made, and only those."""

from __future__ import annotations

import uuid

from foundation.layout import Location
from foundation.settings import BucketSettings, Settings
from foundation.storage.store import ObjectStore
from testkit.buckets import buckets_removed_afterwards


def _exists(store: ObjectStore, bucket: str) -> bool:
    return any(b["Name"] == bucket for b in store.client.list_buckets()["Buckets"])


def test_a_bucket_a_test_made_inside_the_block_is_gone_after_it_with_its_objects(
    store: ObjectStore, settings: Settings
) -> None:
    made = f"test-{uuid.uuid4().hex[:12]}"
    with buckets_removed_afterwards(store, settings.buckets):
        store.ensure_bucket(made)
        store.put_bytes(Location(made, "images/a.jpg"), b"\xff\xd8 not empty")
    assert not _exists(store, made)


def test_a_bucket_from_before_the_block_stays(store: ObjectStore, settings: Settings, bucket: str) -> None:
    with buckets_removed_afterwards(store, settings.buckets):
        store.put_bytes(Location(bucket, "kept.txt"), b"kept")
    assert store.get_bytes(Location(bucket, "kept.txt")) == b"kept"


def test_the_core_buckets_and_a_store_bucket_made_meanwhile_stay(store: ObjectStore) -> None:
    suffix = uuid.uuid4().hex[:12]
    core = BucketSettings(training=f"training-{suffix}", models=f"models-{suffix}")
    store_bucket = f"edgecore-edge-store-{suffix[:4]}"  # as `make demo` names a store's bucket
    kept = [core.training, core.models, store_bucket]
    try:
        with buckets_removed_afterwards(store, core):
            for name in kept:
                store.ensure_bucket(name)
        assert all(_exists(store, name) for name in kept)
    finally:
        for name in kept:
            store.client.delete_bucket(Bucket=name)
