"""The object store keeps bytes intact and says clearly what went wrong, on the real MinIO."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from foundation.errors import IntegrityError, NotFound, ServiceUnavailable
from foundation.layout import Location
from foundation.settings import Settings
from foundation.storage.objects import ObjectReader
from foundation.storage.reader import BucketReader
from foundation.storage.store import ObjectStore


def test_small_object_round_trips_with_its_sha256(store: ObjectStore, bucket: str) -> None:
    loc = Location(bucket, "a/b.bin")
    stored = store.put_bytes(loc, b"hello edge")
    assert stored.sha256 == hashlib.sha256(b"hello edge").hexdigest()
    assert store.head(loc).sha256 == stored.sha256
    assert store.get_bytes(loc, expected_sha256=stored.sha256) == b"hello edge"


def test_object_over_16_mb_goes_multipart_and_round_trips(
    store: ObjectStore, bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(17 * 1024 * 1024 + 123)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    loc = Location(bucket, "big/object.bin")
    stored = store.put_file(loc, src)
    etag = store.client.head_object(Bucket=bucket, Key=loc.key)["ETag"]
    assert "-" in etag, "a multipart upload has an ETag of the form <md5>-<parts>"
    dest = tmp_path / "out.bin"
    got = store.download(loc, dest, expected_sha256=hashlib.sha256(data).hexdigest())
    assert got.sha256 == stored.sha256 and got.size == len(data)
    assert dest.read_bytes() == data


@pytest.mark.parametrize("transport", ["boto3 store", "signed wire"])
def test_both_transports_read_a_range_verified_and_refuse_a_wrong_digest(
    store: ObjectStore, settings: Settings, bucket: str, tmp_path: Path, transport: str
) -> None:
    reader: ObjectReader = store if transport == "boto3 store" else BucketReader.connect(settings.s3)
    data = os.urandom(3 * 1024 * 1024)
    loc = Location(bucket, "shard.tar")
    store.put_bytes(loc, data)
    member = data[1000:251_000]

    got = reader.download_range(
        loc, 1000, len(member), tmp_path / "member", hashlib.sha256(member).hexdigest()
    )

    assert (tmp_path / "member").read_bytes() == member and got.size == len(member)
    with pytest.raises(IntegrityError):
        reader.download_range(
            loc, 1001, len(member), tmp_path / "shifted", hashlib.sha256(member).hexdigest()
        )
    assert not (tmp_path / "shifted").exists()


def test_bytes_that_no_longer_match_their_sha256_are_refused(
    store: ObjectStore, bucket: str, tmp_path: Path
) -> None:
    loc = Location(bucket, "tampered.bin")
    original = store.put_bytes(loc, b"original")
    store.client.put_object(
        Bucket=bucket, Key=loc.key, Body=b"tampered", Metadata={"sha256": original.sha256}
    )
    with pytest.raises(IntegrityError, match="tampered.bin"):
        store.get_bytes(loc)
    with pytest.raises(IntegrityError):
        store.download(loc, tmp_path / "t.bin")
    assert not (tmp_path / "t.bin").exists() and not (tmp_path / "t.bin.part").exists()


def test_missing_object_is_not_found_naming_bucket_and_key(store: ObjectStore, bucket: str) -> None:
    with pytest.raises(NotFound, match=f"s3://{bucket}/no/such/key"):
        store.get_bytes(Location(bucket, "no/such/key"))


def test_conditional_put_lets_exactly_one_writer_create_a_key(store: ObjectStore, bucket: str) -> None:
    loc = Location(bucket, "versions/v000001/claim")
    assert store.put_if_absent(loc, b"first") is True
    assert store.put_if_absent(loc, b"second") is False
    assert store.get_bytes(loc) == b"first"


def test_listing_returns_keys_in_order_and_folders(store: ObjectStore, bucket: str) -> None:
    for key in ("p/v000002/x", "p/v000001/y", "p/v000001/z"):
        store.put_bytes(Location(bucket, key), b"1")
    assert [o.location.key for o in store.list(Location(bucket, "p/"))] == [
        "p/v000001/y",
        "p/v000001/z",
        "p/v000002/x",
    ]
    assert store.list_prefixes(Location(bucket, "p/")) == ["p/v000001/", "p/v000002/"]


def test_unreachable_endpoint_is_a_retryable_error(stack: object) -> None:
    settings = Settings().updated(s3={"port": 1, "endpoint": "http://127.0.0.1:1"})
    with pytest.raises(ServiceUnavailable) as err:
        ObjectStore(settings.s3).get_bytes(Location("edgecore-training", "x"))
    assert err.value.retryable
