"""The boto3 transport: buckets, writes, conditional writes, copies, and reads where speed does not matter.

Every write records the object's sha256 (``objects.SHA256_META``); every read verifies it
(``objects.verify``); every failure becomes an edgecore error (``failures.s3_error``).
The hot paths read through :class:`foundation.storage.reader.BucketReader` instead.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from foundation.errors import NotFound, PayloadTooLarge
from foundation.layout import Location
from foundation.settings import S3Settings
from foundation.storage.failures import PRECONDITION_FAILED, client_error_code, s3_error
from foundation.storage.objects import (
    CHUNK,
    SHA256_META,
    StoredObject,
    file_sha256,
    slice_check,
    verify,
    write_verified,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_EXISTS = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})


class ObjectStore:
    """The S3 operations edgecore needs, with integrity checks and clear errors."""

    def __init__(self, s3: S3Settings) -> None:
        self.endpoint = s3.endpoint_url
        self._client: S3Client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key.get_secret_value(),
            region_name=s3.region,
            verify=str(s3.ca_file) if s3.ca_file else None,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=32,
            ),
        )
        self._threshold = s3.multipart_threshold_mb * 1024 * 1024
        self._transfer = TransferConfig(
            multipart_threshold=self._threshold,
            multipart_chunksize=s3.multipart_chunk_mb * 1024 * 1024,
            max_concurrency=4,
            use_threads=True,
        )

    @property
    def client(self) -> S3Client:
        """The underlying boto3 client, for the rare call this class does not cover."""
        return self._client

    # -- buckets -----------------------------------------------------------------------
    def ensure_bucket(self, bucket: str) -> None:
        try:
            self._client.head_bucket(Bucket=bucket)
            return
        except (ClientError, BotoCoreError) as exc:
            if not isinstance(s3_error(exc, "head bucket", bucket), NotFound):
                raise s3_error(exc, "head bucket", bucket) from exc
        try:
            self._client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if client_error_code(exc) not in _EXISTS:
                raise s3_error(exc, "create bucket", bucket) from exc
        except BotoCoreError as exc:
            raise s3_error(exc, "create bucket", bucket) from exc

    # -- writing -----------------------------------------------------------------------
    def put_bytes(
        self, loc: Location, data: bytes, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        try:
            return self._put(loc, data, content_type)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, "put", loc) from exc

    def _put(self, loc: Location, data: bytes, content_type: str) -> StoredObject:
        digest = hashlib.sha256(data).hexdigest()
        self._client.put_object(
            Bucket=loc.bucket,
            Key=loc.key,
            Body=data,
            ContentType=content_type,
            Metadata={SHA256_META: digest},
        )
        return StoredObject(loc, digest, len(data))

    def put_file(
        self, loc: Location, path: Path, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        """Upload a file (multipart above the threshold) after hashing it in one pass."""
        sha, size = file_sha256(path)
        with path.open("rb") as fh:
            self._upload(loc, fh, sha, content_type)
        return StoredObject(loc, sha, size)

    def _upload(self, loc: Location, fh: IO[bytes], sha: str, content_type: str) -> None:
        try:
            self._client.upload_fileobj(
                fh,
                loc.bucket,
                loc.key,
                ExtraArgs={"Metadata": {SHA256_META: sha}, "ContentType": content_type},
                Config=self._transfer,
            )
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, "upload", loc) from exc
        except Exception as exc:  # s3transfer re-raises worker failures in its own types
            raise s3_error(exc, "upload", loc) from exc

    def copy(self, src: Location, dst: Location) -> None:
        """Server-side copy; metadata (and so the sha256) travels with the object."""
        try:
            self._client.copy(
                {"Bucket": src.bucket, "Key": src.key}, dst.bucket, dst.key, Config=self._transfer
            )
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, f"copy {src.uri} to", dst) from exc

    def delete(self, loc: Location) -> None:
        try:
            self._client.delete_object(Bucket=loc.bucket, Key=loc.key)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, "delete", loc) from exc

    # -- reading -----------------------------------------------------------------------
    def abort_stale_uploads(self, prefix: Location, older_than_s: float) -> int:
        """Abort multipart uploads under ``prefix`` begun over ``older_than_s`` ago (a writer that died
        mid-transfer leaves its parts behind, invisible and paid for); returns how many."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        aborted = 0
        try:
            pages = self._client.get_paginator("list_multipart_uploads")
            for page in pages.paginate(Bucket=prefix.bucket, Prefix=prefix.key):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < cutoff:
                        self._client.abort_multipart_upload(
                            Bucket=prefix.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        except (BotoCoreError, ClientError) as exc:
            raise s3_error(exc, "abort stale uploads under", prefix) from exc
        return aborted

    def head(self, loc: Location) -> StoredObject:
        try:
            meta = self._client.head_object(Bucket=loc.bucket, Key=loc.key)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, "head", loc) from exc
        return StoredObject(loc, meta.get("Metadata", {}).get(SHA256_META, ""), meta["ContentLength"])

    def exists(self, loc: Location) -> bool:
        try:
            self.head(loc)
        except NotFound:
            return False
        return True

    def get_bytes(
        self, loc: Location, expected_sha256: str | None = None, max_bytes: int | None = None
    ) -> bytes:
        """Read a whole (small) object and verify it against its recorded sha256."""
        try:
            resp = self._client.get_object(Bucket=loc.bucket, Key=loc.key)
            if max_bytes is not None and resp["ContentLength"] > max_bytes:
                resp["Body"].close()
                raise PayloadTooLarge(f"{loc.uri}: {resp['ContentLength']} bytes exceeds {max_bytes}")
            data = resp["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, "get", loc) from exc
        recorded = resp.get("Metadata", {}).get(SHA256_META)
        verify(loc, hashlib.sha256(data).hexdigest(), recorded, expected_sha256)
        return data

    def download(self, loc: Location, dest: Path, expected_sha256: str | None = None) -> StoredObject:
        """Stream an object to ``dest`` and verify it on the way."""
        return self._download(loc, loc, dest, lambda meta, sha, _: verify(loc, sha, meta, expected_sha256))

    def download_range(
        self, loc: Location, offset: int, size: int, dest: Path, expected_sha256: str
    ) -> StoredObject:
        """Stream ``size`` bytes at ``offset`` of an object (a member of a shard) to ``dest``, verified."""
        check = slice_check(loc, offset, size, expected_sha256)
        return self._download(loc, loc, dest, check, f"bytes={offset}-{offset + size - 1}")

    def _download(
        self,
        loc: Location,
        where: Location,
        dest: Path,
        check: Callable[[str | None, str, int], None],
        byte_range: str | None = None,
    ) -> StoredObject:
        extra: dict[str, Any] = {"Range": byte_range} if byte_range else {}

        def fill(sink: Callable[[bytes], object]) -> str | None:
            resp = self._client.get_object(Bucket=loc.bucket, Key=loc.key, **extra)
            for chunk in resp["Body"].iter_chunks(CHUNK):
                sink(chunk)
            return resp.get("Metadata", {}).get(SHA256_META)

        try:
            sha, size = write_verified(dest, fill, check)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, "download", where) from exc
        return StoredObject(loc, sha, size)

    def list(self, prefix: Location, recursive: bool = True) -> Iterator[StoredObject]:
        """Objects under a prefix in key order (sha256 is read lazily: empty here)."""
        paginator = self._client.get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {"Bucket": prefix.bucket, "Prefix": prefix.key}
        if not recursive:
            kwargs["Delimiter"] = "/"
        try:
            for page in paginator.paginate(**kwargs):
                for obj in page.get("Contents", []):
                    yield StoredObject(Location(prefix.bucket, obj["Key"]), "", obj["Size"])
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, "list", prefix) from exc

    def list_prefixes(self, prefix: Location) -> builtins.list[str]:
        """The "folders" directly below a prefix (their full keys, ending in '/')."""
        paginator = self._client.get_paginator("list_objects_v2")
        found: builtins.list[str] = []
        try:
            for page in paginator.paginate(Bucket=prefix.bucket, Prefix=prefix.key, Delimiter="/"):
                found.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, "list", prefix) from exc
        return found

    def put_if_absent(self, loc: Location, data: bytes, content_type: str = "application/json") -> bool:
        """Create an object only if no object has the key yet (S3 conditional write).

        This is how concurrent writers agree on a version number without a lock:
        exactly one ``If-None-Match: *`` PUT of a key succeeds.
        """
        return self._put_if(loc, data, content_type, IfNoneMatch="*") is not None

    def get_tagged(self, loc: Location, max_bytes: int) -> tuple[bytes, str] | None:
        """A small object and its ETag, for a later :meth:`put_if_unchanged`; None if absent."""
        try:
            resp = self._client.get_object(Bucket=loc.bucket, Key=loc.key)
            if resp["ContentLength"] > max_bytes:
                resp["Body"].close()
                raise PayloadTooLarge(f"{loc.uri}: {resp['ContentLength']} bytes exceeds {max_bytes}")
            return resp["Body"].read(), str(resp["ETag"])
        except ClientError as exc:
            if client_error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise s3_error(exc, "get", loc) from exc
        except BotoCoreError as exc:
            raise s3_error(exc, "get", loc) from exc

    def put_if_unchanged(self, loc: Location, data: bytes, etag: str | None) -> str | None:
        """Replace an object only if it still has ``etag`` (create it only if absent, for None).

        An optimistic lock without a lock server: of two writers that read the same
        version, exactly one write lands; the other gets None and reads again.
        """
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        return self._put_if(loc, data, "application/json", **condition)

    def _put_if(self, loc: Location, data: bytes, content_type: str, **condition: str) -> str | None:
        """The new ETag, or None where the condition did not hold."""
        try:
            resp = self._client.put_object(
                Bucket=loc.bucket,
                Key=loc.key,
                Body=data,
                ContentType=content_type,
                Metadata={SHA256_META: hashlib.sha256(data).hexdigest()},
                **condition,  # type: ignore[arg-type]
            )
        except ClientError as exc:
            if client_error_code(exc) in PRECONDITION_FAILED:
                return None
            raise s3_error(exc, "conditional put", loc) from exc
        except BotoCoreError as exc:
            raise s3_error(exc, "conditional put", loc) from exc
        return str(resp["ETag"])
