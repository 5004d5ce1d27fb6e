"""The hot reads: listings and verified GETs on the signed wire (:class:`foundation.storage.wire.S3Wire`).

A controller fleet spends nearly all its CPU on S3 requests (a listing, a manifest and
every file of each edge's new version), a shipper reads a set of hundreds of images, and
``ingest`` reads a dataset's images out of its shards: many small requests, each far
cheaper signed by hand than through botocore.  The reader offers the same verified reads
as :class:`foundation.storage.store.ObjectStore` (``ObjectReader``): every body hashed
while read and refused if it matches neither its recorded nor the expected sha256.
"""

from __future__ import annotations

import builtins
import hashlib
import http.client
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

from foundation.errors import PayloadTooLarge, ServiceUnavailable
from foundation.layout import Location
from foundation.settings import S3Settings
from foundation.storage.failures import S3Failure, s3_error
from foundation.storage.objects import CHUNK, SHA256_META, StoredObject, slice_check, verify, write_verified
from foundation.storage.wire import S3Wire

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_ATTEMPTS = 3
Sink = Callable[[bytes], object]


class BucketReader:
    """Read-only S3 access on kept-alive connections; thread-safe (one connection per thread)."""

    def __init__(self, wire: S3Wire) -> None:
        self._wire = wire

    @classmethod
    def connect(cls, s3: S3Settings) -> BucketReader:
        return cls(S3Wire(s3))

    # -- the reads ---------------------------------------------------------------------
    def list(self, prefix: Location, recursive: bool = True, page_size: int = 1000) -> Iterator[StoredObject]:
        """Objects under a prefix in key order (sha256 empty: a listing does not carry it)."""
        for root in self._pages(prefix, None if recursive else "/", page_size):
            for item in root.iter(f"{_NS}Contents"):
                key, size = item.findtext(f"{_NS}Key"), item.findtext(f"{_NS}Size")
                if key is not None:
                    yield StoredObject(Location(prefix.bucket, key), "", int(size or 0))

    def list_prefixes(self, prefix: Location) -> builtins.list[str]:
        """The "folders" directly below a prefix (their full keys, ending in '/')."""
        return [
            text
            for root in self._pages(prefix, "/", 1000)
            for item in root.iter(f"{_NS}CommonPrefixes")
            if (text := item.findtext(f"{_NS}Prefix"))
        ]

    def get_bytes(
        self,
        loc: Location,
        expected_sha256: str | None = None,
        max_bytes: int | None = None,
        verify_sha256: bool = True,
    ) -> bytes:
        """Read a whole (small) object and verify it against its recorded sha256.

        ``verify_sha256=False`` skips the hashing, for a reader whose bytes are checked end
        to end further on anyway (the shipper: the core hashes every image of a set).
        """
        chunks: builtins.list[bytes] = []
        hasher = hashlib.sha256() if verify_sha256 else None

        def sink(chunk: bytes) -> None:
            chunks.append(chunk)
            if hasher is not None:
                hasher.update(chunk)

        recorded, _ = self._get(loc, sink, max_bytes)
        if hasher is not None:
            verify(loc, hasher.hexdigest(), recorded, expected_sha256)
        return b"".join(chunks)

    def download(self, loc: Location, dest: Path, expected_sha256: str | None = None) -> StoredObject:
        """Stream an object to ``dest`` and verify it on the way."""
        sha, size = write_verified(
            dest,
            lambda sink: self._get(loc, sink, None)[0],
            lambda recorded, sha, _: verify(loc, sha, recorded, expected_sha256),
        )
        return StoredObject(loc, sha, size)

    def download_range(
        self, loc: Location, offset: int, size: int, dest: Path, expected_sha256: str
    ) -> StoredObject:
        """``size`` bytes at ``offset`` of an object (a member of a shard) to ``dest``, verified."""
        byte_range = {"Range": f"bytes={offset}-{offset + size - 1}"}
        check = slice_check(loc, offset, size, expected_sha256)
        sha, _ = write_verified(dest, lambda sink: self._get(loc, sink, size, byte_range)[0], check)
        return StoredObject(loc, sha, size)

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        self._wire.close()

    # -- HTTP --------------------------------------------------------------------------
    def _pages(self, prefix: Location, delimiter: str | None, page_size: int) -> Iterator[ET.Element]:
        query = {"list-type": "2", "prefix": prefix.key, "max-keys": str(page_size)}
        if delimiter:
            query["delimiter"] = delimiter
        while True:
            chunks: builtins.list[bytes] = []
            self._request(Location(prefix.bucket, ""), query, chunks.append, None, "list", prefix)
            try:
                root = ET.fromstring(b"".join(chunks))
            except ET.ParseError as exc:
                raise ServiceUnavailable(f"list {prefix.uri}: unreadable answer ({exc})") from exc
            yield root
            token = root.findtext(f"{_NS}NextContinuationToken")
            if root.findtext(f"{_NS}IsTruncated") != "true" or not token:
                return
            query["continuation-token"] = token

    def _get(
        self, loc: Location, sink: Sink, max_bytes: int | None, headers: dict[str, str] | None = None
    ) -> tuple[str | None, int]:
        """(recorded sha256, size); the body goes chunk by chunk to ``sink``."""
        return self._request(loc, {}, sink, max_bytes, "get", loc, headers)

    def _request(
        self,
        target: Location,
        query: dict[str, str],
        sink: Sink,
        max_bytes: int | None,
        action: str,
        where: Location,
        headers: dict[str, str] | None = None,
    ) -> tuple[str | None, int]:
        """One signed GET, retried on a fresh connection when the transport or S3 fails."""
        for attempt in range(1, _ATTEMPTS + 1):
            size = 0
            try:
                resp = self._wire.send("GET", target, query, extra_headers=headers)
                if resp.status not in (200, 206):
                    raise S3Failure.read(resp)
                length = int(resp.getheader("Content-Length") or 0)
                if max_bytes is not None and length > max_bytes:
                    self.close()  # the unread body stays on the connection
                    raise PayloadTooLarge(f"{where.uri}: {length} bytes exceeds {max_bytes}")
                while chunk := resp.read(CHUNK):  # IncompleteRead if the body is cut short
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        self.close()
                        raise PayloadTooLarge(f"{where.uri}: more than {max_bytes} bytes")
                    sink(chunk)
                return resp.getheader(f"x-amz-meta-{SHA256_META}"), size
            except S3Failure as exc:
                if attempt == _ATTEMPTS or not exc.retryable:
                    raise s3_error(exc, action, where) from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()  # e.g. a kept-alive connection the server closed: retry on a new one
                if attempt == _ATTEMPTS or size:  # bytes already passed on cannot be taken back
                    raise ServiceUnavailable(f"{action} {where.uri}: S3 connection failed ({exc})") from exc
            time.sleep(0.1 * attempt)
        raise AssertionError("unreachable")
