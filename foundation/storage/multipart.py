"""One S3 object written as a stream of unknown length: a multipart upload, parts in parallel.

The receiver packs a shipped set into one object while the set still arrives, so it can
neither spool the set (memory, disk) nor wait for one part before sending the next (the
network would sit idle during every PUT).  :class:`MultipartWriter` cuts what it is given
into parts of about ``part_bytes``, uploads up to ``in_flight`` of them at once on a thread pool, and
tells its caller when to wait (:meth:`backlog`), so memory stays bounded by about
``(in_flight + 1) * (part_bytes + largest write)`` whatever the object's size.

Nothing is visible until :meth:`complete`; :meth:`abort` drops every part, so a refused
or broken transfer leaves no object behind.  S3 metadata is sent before the first byte,
so a multipart object carries no ``sha256`` metadata: whoever writes it records digests
elsewhere (for a dataset shard: each member's sha256 in the version's manifest).

Parts go up through :class:`foundation.storage.wire.S3Wire` as the buffers they were written in
(never joined into one part-sized copy) and unsigned: botocore would hash each part
twice over plain HTTP (SHA-256 to sign it, CRC32 for its checksum header), which for a
set cost the receiver more CPU than receiving and checking it; the digests that matter
are the members' own, recorded by the writer's caller.  Starting, completing and
aborting the upload (three requests per object) stay on boto3.
"""

from __future__ import annotations

import contextlib
import http.client
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from foundation.errors import InvalidInput, PayloadTooLarge, ServiceUnavailable
from foundation.layout import Location
from foundation.storage.failures import S3Failure, s3_error
from foundation.storage.store import ObjectStore
from foundation.storage.wire import S3Wire

MIN_PART_BYTES = 5 * 1_048_576
MAX_PARTS = 10_000
SMALL_WRITE = 4096
"""Writes smaller than this (tar headers, padding) are merged with their neighbour, so a
part is sent in a few large buffers rather than one syscall per 512-byte header."""
_ATTEMPTS = 3


class MultipartWriter:
    """Write-only stream into one S3 object; call :meth:`complete` or :meth:`abort` exactly once."""

    def __init__(
        self,
        store: ObjectStore,
        wire: S3Wire,
        loc: Location,
        pool: ThreadPoolExecutor,
        part_bytes: int,
        in_flight: int,
        content_type: str = "application/octet-stream",
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise InvalidInput(f"multipart parts must be at least {MIN_PART_BYTES} bytes, not {part_bytes}")
        self.loc = loc
        self.size = 0
        self._client = store.client
        self._wire = wire
        self._pool = pool
        self._part_bytes = part_bytes
        self._in_flight = max(1, in_flight)
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._uploading: deque[Future[dict[str, Any]]] = deque()
        self._parts: list[Any] = []  # CompletedPartTypeDef
        try:
            created = self._client.create_multipart_upload(
                Bucket=loc.bucket, Key=loc.key, ContentType=content_type
            )
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, "start multipart upload", loc) from exc
        self._upload_id = created["UploadId"]

    def write(self, data: bytes) -> None:
        """Buffer ``data``; every full part starts uploading at once (never blocks)."""
        if len(data) < SMALL_WRITE and self._buffer and len(self._buffer[-1]) < SMALL_WRITE:
            self._buffer[-1] += data
        else:
            self._buffer.append(data)
        self._buffered += len(data)
        self.size += len(data)
        if self._buffered >= self._part_bytes:
            # Parts need not be equal, only >= 5 MB: what is buffered goes up as it is.
            self._send()

    def backlog(self) -> Future[dict[str, Any]] | None:
        """The oldest part upload, while too many are in flight: wait for it before writing on."""
        while self._uploading and self._uploading[0].done():
            self._parts.append(self._uploading.popleft().result())
        if len(self._uploading) >= self._in_flight:
            return self._uploading[0]
        return None

    def complete(self) -> None:
        """Send the last part, wait for every part, and make the object visible."""
        if self._buffered or (not self._parts and not self._uploading):
            self._send()
        while self._uploading:
            self._parts.append(self._uploading.popleft().result())
        try:
            self._client.complete_multipart_upload(
                Bucket=self.loc.bucket,
                Key=self.loc.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": sorted(self._parts, key=lambda p: int(p["PartNumber"]))},
            )
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, "complete multipart upload", self.loc) from exc

    def abort(self) -> None:
        """Drop every part (best effort: S3 expires forgotten uploads too)."""
        for future in self._uploading:
            future.cancel()
        for future in self._uploading:
            if not future.cancelled():
                future.exception()  # wait: a part finishing after the abort would linger
        self._uploading.clear()
        self._buffer, self._buffered = [], 0
        with contextlib.suppress(ClientError, BotoCoreError):
            self._client.abort_multipart_upload(
                Bucket=self.loc.bucket, Key=self.loc.key, UploadId=self._upload_id
            )

    def _send(self) -> None:
        number = len(self._parts) + len(self._uploading) + 1
        if number > MAX_PARTS:
            raise PayloadTooLarge(f"{self.loc.uri}: more than {MAX_PARTS} parts of {self._part_bytes} bytes")
        buffers, length = self._buffer, self._buffered
        self._buffer, self._buffered = [], 0
        self._uploading.append(self._pool.submit(self._upload_part, number, buffers, length))

    def _upload_part(self, number: int, buffers: list[bytes], length: int) -> dict[str, Any]:
        """One part, retried on a fresh connection when the transport fails or S3 is busy."""
        query = {"partNumber": str(number), "uploadId": self._upload_id}
        action = f"upload part {number} of"
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                resp = self._wire.send("PUT", self.loc, query, buffers, length)
                if resp.status != 200:
                    raise S3Failure.read(resp)
                resp.read()
                etag = resp.getheader("ETag")
                if not etag:
                    raise ServiceUnavailable(f"{action} {self.loc.uri}: S3 answered without an ETag")
                return {"PartNumber": number, "ETag": etag}
            except S3Failure as exc:
                if attempt == _ATTEMPTS or not exc.retryable:
                    raise s3_error(exc, action, self.loc) from exc
            except (OSError, http.client.HTTPException) as exc:
                self._wire.close()  # the part is in memory: send it again on a new connection
                if attempt == _ATTEMPTS:
                    raise ServiceUnavailable(
                        f"{action} {self.loc.uri}: S3 connection failed ({exc})"
                    ) from exc
            time.sleep(0.1 * attempt)
        raise AssertionError("unreachable")
