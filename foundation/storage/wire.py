"""The signed transport: S3 requests signed by hand (SigV4) on kept-alive ``http.client`` connections.

The hot S3 calls are many small GETs (a controller verifying a model version, a shipper
reading a set's images) and large part uploads (the receiver packing a set into its
shard).  botocore's per-request overhead (event hooks, signing, parsing) and, over plain
HTTP, its two extra passes over every body (SHA-256 to sign, CRC32 to checksum) cost
more CPU there than the transfer itself (``bench/transfer.py`` and ``bench/fleet.py``
show it).  So these calls sign by hand on one connection per thread, and send bodies as
``UNSIGNED-PAYLOAD``, as botocore does over HTTPS: their integrity is checked end to
end by whoever wrote them (a shard's manifest lists each member's sha256, verified on
every read).  Error answers are mapped by :mod:`foundation.storage.failures`.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from urllib.parse import quote, urlsplit

from foundation.errors import InvalidInput
from foundation.layout import Location
from foundation.settings import S3Settings
from foundation.tls import client_context

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_SIGNED = "host;x-amz-content-sha256;x-amz-date"

Body = bytes | memoryview | Iterable[bytes | memoryview]


class S3Wire:
    """Signed requests to one S3 endpoint; thread-safe (one connection per thread)."""

    def __init__(self, s3: S3Settings) -> None:
        url = urlsplit(s3.endpoint_url)
        if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
            raise InvalidInput(f"S3 endpoint {s3.endpoint_url!r}: expected http(s)://host[:port]")
        self.host = url.netloc
        self._tls = client_context(s3.ca_file) if url.scheme == "https" else None
        self._access_key = s3.access_key
        self._secret = s3.secret_key.get_secret_value()
        self._region = s3.region
        self._keys: dict[str, bytes] = {}
        self._local = threading.local()

    def send(
        self,
        method: str,
        loc: Location,
        query: Mapping[str, str] | None = None,
        body: Body | None = None,
        length: int = 0,
        extra_headers: Mapping[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        """Send one request on this thread's connection and return the answer, status unchecked.

        A body (``length`` bytes, given as one buffer or as several, which are sent as
        they are, never joined) goes unsigned, as do ``extra_headers`` (a ``Range``).
        Transport errors propagate: the caller knows whether the request may be repeated
        (call :meth:`close` first).
        """
        path = "/" + quote(loc.bucket, safe="") + "/" + quote(loc.key, safe="/")
        canonical_query = "&".join(
            f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted((query or {}).items())
        )
        target = path + ("?" + canonical_query if canonical_query else "")
        payload = EMPTY_SHA256 if body is None else UNSIGNED_PAYLOAD
        headers = {**self._sign(method, path, canonical_query, payload), **(extra_headers or {})}
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
            if self._tls is not None:
                conn = _HTTPSConnection(self.host, timeout=60, context=self._tls)
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
