"""S3 requests signed by hand (AWS Signature Version 4) on kept-alive ``http.client`` connections.

The data path's hot S3 calls are many small GETs (a controller verifying a model
version, a shipper reading a set's images) and large part uploads (the receiver packing
a set into its shard).  botocore spends about 4 ms of CPU on each request (event hooks,
signing, user agent, parsing) and, over plain HTTP, hashes every request body twice
more: SHA-256 for the signature and CRC32 for its checksum header; for a 500 MB set that
is more CPU than MinIO needs to store it.  These calls go through :class:`S3Wire`
instead: one connection per thread, a signature in tens of microseconds, and bodies
sent as ``UNSIGNED-PAYLOAD`` as botocore itself does over HTTPS, because their
integrity is checked end to end by whoever wrote them (a dataset shard's manifest lists
each member's sha256, verified on every read).  Everything else keeps
``edgecore.storage.ObjectStore``.

Failures are mapped here, once, to edgecore errors that name the object and say
whether a retry can help, as ``ObjectStore`` does for botocore's.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from urllib.parse import quote, urlsplit

from edgecore.errors import EdgecoreError, InvalidInput, NotFound, PermanentError, ServiceUnavailable
from edgecore.layout import Location
from edgecore.settings import Settings

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_SIGNED = "host;x-amz-content-sha256;x-amz-date"
_MISSING = {"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NotFound"}
_BUSY = {"SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError", "XMinioServerNotInitialized"}

Body = bytes | memoryview | Iterable[bytes | memoryview]


class S3Failure(Exception):
    """An S3 error answer (status and code), turned into an edgecore error by :func:`s3_failure`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code

    @property
    def retryable(self) -> bool:
        return self.status >= 500 or self.code in _BUSY

    @classmethod
    def read(cls, resp: http.client.HTTPResponse) -> S3Failure:
        """The failure an error answer describes (its body is read, so the connection stays usable)."""
        body = resp.read()
        code, message = "", body[:200].decode(errors="replace")
        try:
            root = ET.fromstring(body)
            code, message = root.findtext("Code") or "", root.findtext("Message") or message
        except ET.ParseError:
            pass
        return cls(resp.status, code, message)


def s3_failure(exc: S3Failure, action: str, loc: Location) -> EdgecoreError:
    if exc.code in _MISSING or exc.status == 404:
        return NotFound(f"{action} {loc.uri}: not found ({exc.code or exc.status})")
    if exc.retryable:
        return ServiceUnavailable(f"{action} {loc.uri}: S3 answered {exc.code or exc.status}")
    return PermanentError(f"{action} {loc.uri}: S3 refused with {exc.code or exc.status}: {exc}")


class S3Wire:
    """Signed requests to one S3 endpoint; thread-safe (one connection per thread)."""

    def __init__(self, settings: Settings) -> None:
        url = urlsplit(settings.s3_endpoint_url)
        if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
            raise InvalidInput(f"S3 endpoint {settings.s3_endpoint_url!r}: expected http(s)://host[:port]")
        self.host = url.netloc
        self._https = url.scheme == "https"
        self._access_key = settings.s3_access_key
        self._secret = settings.s3_secret_key.get_secret_value()
        self._region = settings.s3_region
        self._keys: dict[str, bytes] = {}
        self._local = threading.local()

    def send(
        self,
        method: str,
        loc: Location,
        query: Mapping[str, str] | None = None,
        body: Body | None = None,
        length: int = 0,
    ) -> http.client.HTTPResponse:
        """Send one request on this thread's connection and return the answer, status unchecked.

        A body (``length`` bytes, given as one buffer or as several, which are sent as
        they are, never joined) goes unsigned.  Transport errors propagate: the caller
        knows whether the request may be repeated (call :meth:`close` first).
        """
        path = "/" + quote(loc.bucket, safe="") + "/" + quote(loc.key, safe="/")
        canonical_query = "&".join(
            f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted((query or {}).items())
        )
        target = path + ("?" + canonical_query if canonical_query else "")
        payload = EMPTY_SHA256 if body is None else UNSIGNED_PAYLOAD
        headers = self._sign(method, path, canonical_query, payload)
        conn = self._connection()
        if body is None:
            conn.request(method, target, headers=headers)
        else:
            headers["Content-Length"] = str(length)
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            for buffer in [body] if isinstance(body, (bytes, memoryview)) else body:
                conn.send(buffer)
        return conn.getresponse()

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._https:
                conn = _HTTPSConnection(self.host, timeout=60, context=ssl.create_default_context())
            else:
                conn = _HTTPConnection(self.host, timeout=60)
            self._local.conn = conn
        return conn

    def _sign(self, method: str, path: str, canonical_query: str, payload: str) -> dict[str, str]:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = stamp[:8]
        canonical = "\n".join(
            (
                method,
                path,
                canonical_query,
                f"host:{self.host}\nx-amz-content-sha256:{payload}\nx-amz-date:{stamp}\n",
                _SIGNED,
                payload,
            )
        )
        scope = f"{day}/{self._region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return {
            "Host": self.host,
            "x-amz-date": stamp,
            "x-amz-content-sha256": payload,
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


class _HTTPConnection(http.client.HTTPConnection):
    """Without Nagle's algorithm: a body sent after its headers, or in several buffers, must
    not wait for a delayed ACK (up to 40 ms on Linux) before its last segment goes out."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _HTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
