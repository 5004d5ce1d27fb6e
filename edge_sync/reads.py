"""The controllers' S3 reads: listings and verified GETs, signed by hand, on kept-alive connections.

A controller fleet spends nearly all its CPU on S3 requests (a listing, the manifest and
every file of each edge's new version: 8 requests per edge).  botocore costs about 4 ms
of CPU per request (event hooks, signing, user agent, parsing), the MinIO SDK about 2 ms;
a SigV4-signed GET on a per-thread ``http.client`` connection costs under 1 ms.  So the
controllers read through this reader; every write, multipart upload and the rest of
edgecore keep ``edgecore.storage.ObjectStore``.  The reader keeps ``ObjectStore``'s
guarantees: every body is hashed while read and refused if it does not match the
recorded (``x-amz-meta-sha256``) or the expected sha256, and every error names the
object and says whether a retry can help.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import http.client
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlsplit

from edgecore.errors import (
    EdgecoreError,
    IntegrityError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermanentError,
    ServiceUnavailable,
)
from edgecore.layout import Location
from edgecore.settings import Settings
from edgecore.storage import StoredObject

_CHUNK = 1 << 20
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SIGNED = "host;x-amz-content-sha256;x-amz-date"
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_MISSING = {"NoSuchKey", "NoSuchBucket", "NotFound"}
_BUSY = {"SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError", "XMinioServerNotInitialized"}
_ATTEMPTS = 3


class ObjectReader(Protocol):
    """What verifying a model version reads; ``ObjectStore`` and :class:`BucketReader` both fit."""

    def list(self, prefix: Location, recursive: bool = True) -> Iterator[StoredObject]: ...

    def list_prefixes(self, prefix: Location) -> builtins.list[str]: ...

    def get_bytes(
        self, loc: Location, expected_sha256: str | None = None, max_bytes: int | None = None
    ) -> bytes: ...

    def download(self, loc: Location, dest: Path, expected_sha256: str | None = None) -> StoredObject: ...


class _Failed(Exception):
    """An S3 error answer: status and code, for ``_wrap``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class BucketReader:
    """Read-only S3 access for a controller process; thread-safe (one connection per thread)."""

    def __init__(self, settings: Settings) -> None:
        url = urlsplit(settings.s3_endpoint_url)
        if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
            raise InvalidInput(f"S3 endpoint {settings.s3_endpoint_url!r}: expected http(s)://host[:port]")
        self._host = url.netloc
        self._https = url.scheme == "https"
        self._access_key = settings.s3_access_key
        self._secret = settings.s3_secret_key.get_secret_value()
        self._region = settings.s3_region
        self._keys: dict[str, bytes] = {}
        self._local = threading.local()

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
        self, loc: Location, expected_sha256: str | None = None, max_bytes: int | None = None
    ) -> bytes:
        """Read a whole (small) object and verify it against its recorded sha256."""
        chunks: builtins.list[bytes] = []
        actual, recorded, _ = self._get(loc, chunks.append, max_bytes)
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
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- HTTP --------------------------------------------------------------------------
    def _pages(self, prefix: Location, delimiter: str | None, page_size: int) -> Iterator[ET.Element]:
        query = {"list-type": "2", "prefix": prefix.key, "max-keys": str(page_size)}
        if delimiter:
            query["delimiter"] = delimiter
        while True:
            chunks: builtins.list[bytes] = []
            self._request(prefix.bucket, "", query, chunks.append, None, "list", prefix)
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
        self, loc: Location, sink: Callable[[bytes], object], max_bytes: int | None
    ) -> tuple[str, str | None, int]:
        """(sha256 of the body, recorded sha256, size); the body goes chunk by chunk to ``sink``."""
        return self._request(loc.bucket, loc.key, {}, sink, max_bytes, "get", loc)

    def _request(
        self,
        bucket: str,
        key: str,
        query: dict[str, str],
        sink: Callable[[bytes], object],
        max_bytes: int | None,
        action: str,
        where: Location,
    ) -> tuple[str, str | None, int]:
        """One signed GET, retried on a fresh connection when the transport or S3 fails."""
        path = "/" + quote(bucket, safe="") + "/" + quote(key, safe="/")
        canonical_query = "&".join(
            f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(query.items())
        )
        target = path + ("?" + canonical_query if canonical_query else "")
        for attempt in range(1, _ATTEMPTS + 1):
            size = 0
            try:
                conn = self._connection()
                conn.request("GET", target, headers=self._sign(path, canonical_query))
                resp = conn.getresponse()
                if resp.status != 200:
                    raise _failure(resp)
                length = int(resp.getheader("Content-Length") or 0)
                if max_bytes is not None and length > max_bytes:
                    self.close()  # the unread body stays on the connection
                    raise PayloadTooLarge(f"{where.uri}: {length} bytes exceeds {max_bytes}")
                digest = hashlib.sha256()
                while chunk := resp.read(_CHUNK):  # IncompleteRead if the body is cut short
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        self.close()
                        raise PayloadTooLarge(f"{where.uri}: more than {max_bytes} bytes")
                    digest.update(chunk)
                    sink(chunk)
                return digest.hexdigest(), resp.getheader("x-amz-meta-sha256"), size
            except _Failed as exc:
                if attempt == _ATTEMPTS or not (exc.status >= 500 or exc.code in _BUSY):
                    raise _wrap(exc, action, where) from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()  # e.g. a kept-alive connection the server closed: retry on a new one
                if attempt == _ATTEMPTS or size:  # bytes already passed on cannot be taken back
                    raise ServiceUnavailable(f"{action} {where.uri}: S3 connection failed ({exc})") from exc
            time.sleep(0.1 * attempt)
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._https:
                context = ssl.create_default_context()
                conn = http.client.HTTPSConnection(self._host, timeout=60, context=context)
            else:
                conn = http.client.HTTPConnection(self._host, timeout=60)
            self._local.conn = conn
        return conn

    def _sign(self, path: str, canonical_query: str) -> dict[str, str]:
        """AWS Signature Version 4 headers of a GET without a body."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = stamp[:8]
        canonical = "\n".join(
            (
                "GET",
                path,
                canonical_query,
                f"host:{self._host}\nx-amz-content-sha256:{_EMPTY_SHA256}\nx-amz-date:{stamp}\n",
                _SIGNED,
                _EMPTY_SHA256,
            )
        )
        scope = f"{day}/{self._region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return {
            "Host": self._host,
            "x-amz-date": stamp,
            "x-amz-content-sha256": _EMPTY_SHA256,
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={self._access_key}/{scope}, "
                f"SignedHeaders={_SIGNED}, Signature={signature}"
            ),
        }

    def _signing_key(self, day: str) -> bytes:
        key = self._keys.get(day)
        if key is None:
            key = hmac.new(f"AWS4{self._secret}".encode(), day.encode(), hashlib.sha256).digest()
            for part in (self._region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {day: key}
        return key


def _failure(resp: http.client.HTTPResponse) -> _Failed:
    body = resp.read()  # error documents are small; reading them keeps the connection usable
    code, message = "", body[:200].decode(errors="replace")
    try:
        root = ET.fromstring(body)
        code, message = root.findtext("Code") or "", root.findtext("Message") or message
    except ET.ParseError:
        pass
    return _Failed(resp.status, code, message)


def _verify(loc: Location, actual: str, recorded: str | None, expected: str | None) -> None:
    for what, want in (("recorded", recorded), ("expected", expected)):
        if want and want != actual:
            raise IntegrityError(f"{loc.uri}: sha256 {actual[:12]}… does not match the {what} {want[:12]}…")


def _wrap(exc: _Failed, action: str, loc: Location) -> EdgecoreError:
    if exc.code in _MISSING or exc.status == 404:
        return NotFound(f"{action} {loc.uri}: not found ({exc.code or exc.status})")
    if exc.status >= 500 or exc.code in _BUSY:
        return ServiceUnavailable(f"{action} {loc.uri}: S3 answered {exc.code or exc.status}")
    return PermanentError(f"{action} {loc.uri}: S3 refused with {exc.code or exc.status}: {exc}")
