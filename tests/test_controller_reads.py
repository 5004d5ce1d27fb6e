"""The controllers' lean S3 reader against the real MinIO: same answers and refusals as ObjectStore."""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from foundation.errors import IntegrityError, NotFound, PayloadTooLarge, PermanentError, ServiceUnavailable
from foundation.layout import Location
from foundation.settings import Settings
from foundation.storage.reader import BucketReader
from foundation.storage.store import ObjectStore
from testkit.delivery import corrupt_in_place

# Keys a signer gets wrong first: spaces, '+', '=', '%', unicode, '~' and nested folders.
KEYS = [
    "models/m/v000001/model.tflite",
    "models/m/v000001/saved_model/variables/variables.index",
    "models/m/v000001/a b+c=d%e~f.txt",
    "models/m/v000001/ünïcode-é.json",
    "models/m/v000002/manifest.json",
    "models/m/serving.json",
    "other/x.bin",
]


@pytest.fixture
def reader(settings: Settings, stack: object) -> BucketReader:
    return BucketReader.connect(settings.s3)


def _fill(store: ObjectStore, bucket: str) -> dict[str, bytes]:
    data = {key: hashlib.sha256(key.encode()).digest() * (i + 1) for i, key in enumerate(KEYS)}
    for key, body in data.items():
        store.put_bytes(Location(bucket, key), body)
    return data


def test_a_read_returns_the_bytes_and_checks_them_against_the_recorded_and_expected_sha256(
    store: ObjectStore, reader: BucketReader, bucket: str
) -> None:
    data = _fill(store, bucket)
    for key, body in data.items():
        assert (
            reader.get_bytes(Location(bucket, key), expected_sha256=hashlib.sha256(body).hexdigest()) == body
        )

    with pytest.raises(IntegrityError, match="expected"):
        reader.get_bytes(Location(bucket, KEYS[0]), expected_sha256="0" * 64)


def test_bytes_that_differ_from_the_recorded_sha256_are_refused(
    store: ObjectStore, reader: BucketReader, bucket: str, tmp_path: Path
) -> None:
    loc = Location(bucket, KEYS[0])
    good = _fill(store, bucket)[KEYS[0]]
    corrupt_in_place(store, loc, bytes([good[0] ^ 0xFF]) + good[1:])

    with pytest.raises(IntegrityError, match="recorded"):
        reader.get_bytes(loc)
    with pytest.raises(IntegrityError):
        reader.download(loc, tmp_path / "model.tflite")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its partial copy is left


def test_a_download_streams_to_the_file_and_reports_digest_and_size(
    store: ObjectStore, reader: BucketReader, bucket: str, tmp_path: Path
) -> None:
    body = b"\x00\x01" * 700_000  # more than one read chunk
    store.put_bytes(Location(bucket, "big.bin"), body)

    stored = reader.download(Location(bucket, "big.bin"), tmp_path / "sub" / "big.bin")

    assert (tmp_path / "sub" / "big.bin").read_bytes() == body
    assert (stored.sha256, stored.size) == (hashlib.sha256(body).hexdigest(), len(body))


def test_missing_objects_and_buckets_are_not_found_and_big_ones_too_large(
    store: ObjectStore, reader: BucketReader, bucket: str
) -> None:
    _fill(store, bucket)
    with pytest.raises(NotFound, match="no-such-key"):
        reader.get_bytes(Location(bucket, "no-such-key"))
    with pytest.raises(NotFound):
        reader.get_bytes(Location(f"{bucket}-absent", "x"))
    with pytest.raises(NotFound):
        list(reader.list(Location(f"{bucket}-absent", "")))
    with pytest.raises(PayloadTooLarge):
        reader.get_bytes(Location(bucket, KEYS[-1]), max_bytes=10)
    # the connection stays usable after each refusal
    assert reader.get_bytes(Location(bucket, KEYS[0])) == store.get_bytes(Location(bucket, KEYS[0]))


@pytest.mark.parametrize("page_size", [1000, 2])
def test_listings_match_the_object_store_page_after_page(
    store: ObjectStore, reader: BucketReader, bucket: str, page_size: int
) -> None:
    _fill(store, bucket)
    for prefix in ("", "models/", "models/m/", "models/m/v000001/", "nothing/"):
        loc = Location(bucket, prefix)
        assert list(reader.list(loc, page_size=page_size)) == list(store.list(loc))
        assert list(reader.list(loc, recursive=False, page_size=page_size)) == list(
            store.list(loc, recursive=False)
        )
        assert reader.list_prefixes(loc) == store.list_prefixes(loc)


def test_many_threads_share_one_reader(store: ObjectStore, reader: BucketReader, bucket: str) -> None:
    data = _fill(store, bucket)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                for key, body in data.items():
                    assert reader.get_bytes(Location(bucket, key)) == body
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_wrong_credentials_are_a_permanent_error(settings: Settings, stack: object, bucket: str) -> None:
    wrong = BucketReader.connect(settings.updated(s3={"secret_key": SecretStr("not-the-secret")}).s3)
    with pytest.raises(PermanentError, match="SignatureDoesNotMatch|InvalidAccessKeyId|403"):
        wrong.get_bytes(Location(bucket, "x"))


def test_an_unreachable_endpoint_is_retryable(settings: Settings) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = BucketReader.connect(settings.updated(s3={"endpoint": f"http://127.0.0.1:{port}"}).s3)
    with pytest.raises(ServiceUnavailable, match="unreachable|connection"):
        down.get_bytes(Location("bucket", "x"))
