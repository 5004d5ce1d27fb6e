"""MultipartWriter against the real MinIO: many parts in flight, in order; abort leaves nothing."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from foundation.errors import InvalidInput, NotFound
from foundation.layout import Location
from foundation.settings import Settings
from foundation.storage.multipart import MIN_PART_BYTES, MultipartWriter
from foundation.storage.store import ObjectStore
from foundation.storage.wire import S3Wire


def test_uneven_writes_become_one_object_with_every_byte_in_order(
    store: ObjectStore, settings: Settings, bucket: str
) -> None:
    loc = Location(bucket, "shards/a.tar")
    data = os.urandom(23 * 1_048_576 + 12_345)
    with ThreadPoolExecutor(2) as pool:
        writer = MultipartWriter(store, S3Wire(settings.s3), loc, pool, MIN_PART_BYTES, in_flight=2)
        pos, step = 0, 700_001
        while pos < len(data):
            writer.write(data[pos : pos + step])
            pos += step
            while (busy := writer.backlog()) is not None:
                busy.result()
        writer.complete()

    assert writer.size == len(data)
    stored = store.client.get_object(Bucket=bucket, Key=loc.key)["Body"].read()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
    parts = store.client.get_object_attributes(Bucket=bucket, Key=loc.key, ObjectAttributes=["ObjectParts"])
    assert parts["ObjectParts"]["TotalPartsCount"] >= 4


def test_an_aborted_upload_leaves_no_object_and_no_upload(
    store: ObjectStore, settings: Settings, bucket: str
) -> None:
    loc = Location(bucket, "shards/b.tar")
    with ThreadPoolExecutor(2) as pool:
        writer = MultipartWriter(store, S3Wire(settings.s3), loc, pool, MIN_PART_BYTES, in_flight=2)
        writer.write(os.urandom(MIN_PART_BYTES + 1))
        writer.abort()

    with pytest.raises(NotFound):
        store.head(loc)
    assert store.client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_parts_below_the_s3_minimum_are_refused(store: ObjectStore, settings: Settings, bucket: str) -> None:
    with ThreadPoolExecutor(1) as pool, pytest.raises(InvalidInput, match="at least"):
        MultipartWriter(store, S3Wire(settings.s3), Location(bucket, "x.tar"), pool, 1_048_576, in_flight=1)
