"""The controllers' and the shipper's S3 reads: listings and verified GETs on :class:`edgecore.wire.S3Wire`.

A controller fleet spends nearly all its CPU on S3 requests (a listing, the manifest and
every file of each edge's new version: 8 requests per edge), and a shipper sends a set
of hundreds of images, each its own GET.  botocore costs about 4 ms of CPU per request
(event hooks, signing, user agent, parsing), the MinIO SDK about 2 ms; a SigV4-signed GET
on a per-thread ``http.client`` connection costs under 1 ms.  So they read through this
reader; every write and the rest of edgecore keep ``edgecore.storage.ObjectStore``.  The
reader keeps ``ObjectStore``'s guarantees: every body is hashed while read and refused if
it does not match the recorded (``x-amz-meta-sha256``) or the expected sha256, and every
error names the object and says whether a retry can help.
"""

from __future__ import annotations

import builtins
import hashlib
import http.client
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from edgecore.errors import IntegrityError, PayloadTooLarge, ServiceUnavailable
from edgecore.layout import Location
from edgecore.settings import Settings
from edgecore.storage import StoredObject
from edgecore.wire import S3Failure, S3Wire, s3_failure

_CHUNK = 1 << 20
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_ATTEMPTS = 3


class ObjectReader(Protocol):
    """What verifying a model version reads; ``ObjectStore`` and :class:`BucketReader` both fit."""

    def list(self, prefix: Location, recursive: bool = True) -> Iterator[StoredObject]: ...

    def list_prefixes(self, prefix: Location) -> builtins.list[str]: ...

    def get_bytes(
        self, loc: Location, expected_sha256: str | None = None, max_bytes: int | None = None
    ) -> bytes: ...

    def download(self, loc: Location, dest: Path, expected_sha256: str | None = None) -> StoredObject: ...


class BucketReader:
    """Read-only S3 access for a controller process; thread-safe (one connection per thread)."""

    def __init__(self, settings: Settings) -> None:
        self._wire = S3Wire(settings)

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
        verify: bool = True,
    ) -> bytes:
        """Read a whole (small) object and verify it against its recorded sha256.

        ``verify=False`` skips the hashing, for a reader whose bytes are checked end to end
        further on anyway (the shipper: the core hashes every image of a set it receives).
        """
        chunks: builtins.list[bytes] = []
        actual, recorded, _ = self._get(loc, chunks.append, max_bytes, verify)
        if verify:
            _verify(loc, actual, recorded, expected_sha256)
        return b"".join(chunks)

    def download(self, loc: Location, dest: Path, expected_sha256: str | None = None) -> StoredObject:
        """Stream an object to ``dest`` (via a temporary file) and verify it on the way."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        try:
            with tmp.open("wb") as out:
                actual, recorded, size = self._get(loc, out.write, None)
            _verify(loc, actual, recorded, expected_sha256)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(dest)
        return StoredObject(loc, actual, size)

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
        self, loc: Location, sink: Callable[[bytes], object], max_bytes: int | None, digest: bool = True
    ) -> tuple[str, str | None, int]:
        """(sha256 of the body or "", recorded sha256, size); the body goes chunk by chunk to ``sink``."""
        return self._request(loc, {}, sink, max_bytes, "get", loc, digest)

    def _request(
        self,
        target: Location,
        query: dict[str, str],
        sink: Callable[[bytes], object],
        max_bytes: int | None,
        action: str,
        where: Location,
        digest: bool = True,
    ) -> tuple[str, str | None, int]:
        """One signed GET, retried on a fresh connection when the transport or S3 fails."""
        for attempt in range(1, _ATTEMPTS + 1):
            size = 0
            try:
                resp = self._wire.send("GET", target, query)
                if resp.status != 200:
                    raise S3Failure.read(resp)
                length = int(resp.getheader("Content-Length") or 0)
                if max_bytes is not None and length > max_bytes:
                    self.close()  # the unread body stays on the connection
                    raise PayloadTooLarge(f"{where.uri}: {length} bytes exceeds {max_bytes}")
                hasher = hashlib.sha256() if digest else None
                while chunk := resp.read(_CHUNK):  # IncompleteRead if the body is cut short
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        self.close()
                        raise PayloadTooLarge(f"{where.uri}: more than {max_bytes} bytes")
                    if hasher is not None:
                        hasher.update(chunk)
                    sink(chunk)
                actual = hasher.hexdigest() if hasher is not None else ""
                return actual, resp.getheader("x-amz-meta-sha256"), size
            except S3Failure as exc:
                if attempt == _ATTEMPTS or not exc.retryable:
                    raise s3_failure(exc, action, where) from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()  # e.g. a kept-alive connection the server closed: retry on a new one
                if attempt == _ATTEMPTS or size:  # bytes already passed on cannot be taken back
                    raise ServiceUnavailable(f"{action} {where.uri}: S3 connection failed ({exc})") from exc
            time.sleep(0.1 * attempt)
        raise AssertionError("unreachable")


def _verify(loc: Location, actual: str, recorded: str | None, expected: str | None) -> None:
    for what, want in (("recorded", recorded), ("expected", expected)):
        if want and want != actual:
            raise IntegrityError(f"{loc.uri}: sha256 {actual[:12]}… does not match the {what} {want[:12]}…")
