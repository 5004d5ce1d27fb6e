"""A small S3 client over boto3: streaming, multipart, sha256 on write and on read.

Every object edgecore writes carries its sha256 in the ``x-amz-meta-sha256`` metadata,
computed while the bytes stream through; every read recomputes it and refuses bytes
that do not match.  boto3/botocore exceptions are wrapped here, once, into edgecore
errors that name the bucket and key and say whether a retry can help.
"""

from __future__ import annotations

import builtins
import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, EndpointConnectionError

from edgecore.errors import (
    EdgecoreError,
    IntegrityError,
    NotFound,
    PayloadTooLarge,
    PermanentError,
    ServiceUnavailable,
)
from edgecore.layout import Location
from edgecore.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SHA256_META = "sha256"
_CHUNK = 1 << 20
_MISSING = {"NoSuchKey", "404", "NoSuchBucket", "NotFound"}


@dataclass(frozen=True)
class StoredObject:
    location: Location
    sha256: str
    size: int


class _HashingReader:
    """Wraps a binary stream and hashes what is read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        chunk = self._raw.read(n)
        self.digest.update(chunk)
        self.size += len(chunk)
        return chunk


def s3_error(exc: Exception, action: str, loc: Location | str) -> EdgecoreError:
    """The edgecore error for a boto3/botocore failure (for S3 calls made outside this class)."""
    return _wrap(exc, action, loc)


def _wrap(exc: Exception, action: str, loc: Location | str) -> EdgecoreError:
    where = loc.uri if isinstance(loc, Location) else loc
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            return NotFound(f"{action} {where}: not found ({code})")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if status >= 500 or code in {"SlowDown", "ServiceUnavailable", "RequestTimeout"}:
            return ServiceUnavailable(f"{action} {where}: S3 answered {code or status}")
        return PermanentError(f"{action} {where}: S3 refused with {code or status}: {exc}")
    if isinstance(exc, (EndpointConnectionError, ConnectionError)):
        return ServiceUnavailable(f"{action} {where}: S3 endpoint unreachable ({exc})")
    return ServiceUnavailable(f"{action} {where}: {exc}")


class ObjectStore:
    """The S3 operations edgecore needs, with integrity checks and clear errors."""

    def __init__(self, settings: Settings) -> None:
        self.endpoint = settings.s3_endpoint_url
        self._client: S3Client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=settings.s3_access_key,
            aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
            region_name=settings.s3_region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=32,
            ),
        )
        self._threshold = settings.s3_multipart_threshold_mb * 1024 * 1024
        self._transfer = TransferConfig(
            multipart_threshold=self._threshold,
            multipart_chunksize=settings.s3_multipart_chunk_mb * 1024 * 1024,
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
        except ClientError as exc:
            if _wrap(exc, "head bucket", bucket).__class__ is not NotFound:
                raise _wrap(exc, "head bucket", bucket) from exc
        except BotoCoreError as exc:
            raise _wrap(exc, "head bucket", bucket) from exc
        try:
            self._client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise _wrap(exc, "create bucket", bucket) from exc
        except BotoCoreError as exc:
            raise _wrap(exc, "create bucket", bucket) from exc

    # -- writing -----------------------------------------------------------------------
    def put_bytes(
        self, loc: Location, data: bytes, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        digest = hashlib.sha256(data).hexdigest()
        try:
            self._client.put_object(
                Bucket=loc.bucket,
                Key=loc.key,
                Body=data,
                ContentType=content_type,
                Metadata={SHA256_META: digest},
            )
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, "put", loc) from exc
        return StoredObject(loc, digest, len(data))

    def put_file(
        self, loc: Location, path: Path, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        """Upload a file (multipart above the threshold) after hashing it in one pass."""
        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        sha = digest.hexdigest()
        with path.open("rb") as fh:
            self._upload(loc, fh, sha, content_type)
        return StoredObject(loc, sha, size)

    def put_stream(
        self,
        loc: Location,
        stream: IO[bytes],
        max_bytes: int,
        content_type: str = "application/octet-stream",
    ) -> StoredObject:
        """Upload a stream of unknown length, bounded by ``max_bytes``.

        The bytes are spooled (in memory up to the multipart threshold, on disk above)
        while hashed, because S3 metadata must be sent before the body.
        """
        reader = _HashingReader(stream)
        with tempfile.SpooledTemporaryFile(max_size=self._threshold) as spool:
            while chunk := reader.read(_CHUNK):
                if reader.size > max_bytes:
                    raise PayloadTooLarge(f"{loc.uri}: stream exceeds {max_bytes} bytes")
                spool.write(chunk)
            spool.seek(0)
            sha = reader.digest.hexdigest()
            self._upload(loc, spool, sha, content_type)
        return StoredObject(loc, sha, reader.size)

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
            raise _wrap(exc, "upload", loc) from exc
        except Exception as exc:  # s3transfer re-raises worker failures in its own types
            raise _wrap(exc, "upload", loc) from exc

    def copy(self, src: Location, dst: Location) -> None:
        """Server-side copy; metadata (and so the sha256) travels with the object."""
        try:
            self._client.copy(
                {"Bucket": src.bucket, "Key": src.key}, dst.bucket, dst.key, Config=self._transfer
            )
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, f"copy {src.uri} to", dst) from exc

    def delete(self, loc: Location) -> None:
        try:
            self._client.delete_object(Bucket=loc.bucket, Key=loc.key)
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, "delete", loc) from exc

    # -- reading -----------------------------------------------------------------------
    def head(self, loc: Location) -> StoredObject:
        try:
            meta = self._client.head_object(Bucket=loc.bucket, Key=loc.key)
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, "head", loc) from exc
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
            raise _wrap(exc, "get", loc) from exc
        recorded = resp.get("Metadata", {}).get(SHA256_META)
        _verify(loc, hashlib.sha256(data).hexdigest(), recorded, expected_sha256)
        return data

    def download(self, loc: Location, dest: Path, expected_sha256: str | None = None) -> StoredObject:
        """Stream an object to ``dest`` (via a temporary file) and verify it on the way."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        try:
            resp = self._client.get_object(Bucket=loc.bucket, Key=loc.key)
            digest = hashlib.sha256()
            size = 0
            with tmp.open("wb") as out:
                for chunk in resp["Body"].iter_chunks(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
        except (ClientError, BotoCoreError) as exc:
            tmp.unlink(missing_ok=True)
            raise _wrap(exc, "download", loc) from exc
        sha = digest.hexdigest()
        try:
            _verify(loc, sha, resp.get("Metadata", {}).get(SHA256_META), expected_sha256)
        except IntegrityError:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(dest)
        return StoredObject(loc, sha, size)

    def download_range(
        self, loc: Location, offset: int, size: int, dest: Path, expected_sha256: str
    ) -> StoredObject:
        """Stream ``size`` bytes at ``offset`` of an object (a member of a shard) to ``dest``, verified.

        The object's own recorded digest does not describe a slice, so the caller's
        ``expected_sha256`` (from a manifest) is required and checked, with the size.
        """
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        where = Location(loc.bucket, f"{loc.key}[{offset}:{offset + size}]")
        try:
            resp = self._client.get_object(
                Bucket=loc.bucket, Key=loc.key, Range=f"bytes={offset}-{offset + size - 1}"
            )
            digest = hashlib.sha256()
            got = 0
            with tmp.open("wb") as out:
                for chunk in resp["Body"].iter_chunks(_CHUNK):
                    digest.update(chunk)
                    got += len(chunk)
                    out.write(chunk)
        except (ClientError, BotoCoreError) as exc:
            tmp.unlink(missing_ok=True)
            raise _wrap(exc, "download", where) from exc
        sha = digest.hexdigest()
        if got != size:
            tmp.unlink(missing_ok=True)
            raise IntegrityError(f"{where.uri}: {got} bytes read, {size} expected (object truncated?)")
        try:
            _verify(where, sha, None, expected_sha256)
        except IntegrityError:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(dest)
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
            raise _wrap(exc, "list", prefix) from exc

    def list_prefixes(self, prefix: Location) -> builtins.list[str]:
        """The "folders" directly below a prefix (their full keys, ending in '/')."""
        paginator = self._client.get_paginator("list_objects_v2")
        found: builtins.list[str] = []
        try:
            for page in paginator.paginate(Bucket=prefix.bucket, Prefix=prefix.key, Delimiter="/"):
                found.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, "list", prefix) from exc
        return found

    def put_if_absent(self, loc: Location, data: bytes, content_type: str = "application/json") -> bool:
        """Create an object only if no object has the key yet (S3 conditional write).

        This is how concurrent writers agree on a version number without a lock:
        exactly one ``If-None-Match: *`` PUT of a key succeeds.
        """
        digest = hashlib.sha256(data).hexdigest()
        try:
            self._client.put_object(
                Bucket=loc.bucket,
                Key=loc.key,
                Body=data,
                ContentType=content_type,
                Metadata={SHA256_META: digest},
                IfNoneMatch="*",
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"PreconditionFailed", "ConditionalRequestConflict", "412"}:
                return False
            raise _wrap(exc, "conditional put", loc) from exc
        except BotoCoreError as exc:
            raise _wrap(exc, "conditional put", loc) from exc
        return True


def _verify(loc: Location, actual: str, recorded: str | None, expected: str | None) -> None:
    for what, want in (("recorded", recorded), ("expected", expected)):
        if want and want != actual:
            raise IntegrityError(f"{loc.uri}: sha256 {actual[:12]}… does not match the {what} {want[:12]}…")
