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
"""

from __future__ import annotations

import contextlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from edgecore.errors import InvalidInput, PayloadTooLarge
from edgecore.layout import Location
from edgecore.storage import ObjectStore, s3_error

MIN_PART_BYTES = 5 * 1_048_576
MAX_PARTS = 10_000


class MultipartWriter:
    """Write-only stream into one S3 object; call :meth:`complete` or :meth:`abort` exactly once."""

    def __init__(
        self,
        store: ObjectStore,
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
        self._buffer.append(data)
        self._buffered += len(data)
        self.size += len(data)
        if self._buffered >= self._part_bytes:
            # Parts need not be equal, only >= 5 MB: sending what is buffered costs one copy.
            self._send(b"".join(self._buffer))
            self._buffer, self._buffered = [], 0

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
            self._send(b"".join(self._buffer))
            self._buffer, self._buffered = [], 0
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

    def _send(self, body: bytes) -> None:
        number = len(self._parts) + len(self._uploading) + 1
        if number > MAX_PARTS:
            raise PayloadTooLarge(f"{self.loc.uri}: more than {MAX_PARTS} parts of {self._part_bytes} bytes")
        self._uploading.append(self._pool.submit(self._upload_part, number, body))

    def _upload_part(self, number: int, body: bytes) -> dict[str, Any]:
        try:
            resp = self._client.upload_part(
                Bucket=self.loc.bucket,
                Key=self.loc.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, f"upload part {number} of", self.loc) from exc
        part: dict[str, Any] = {"PartNumber": number, "ETag": resp["ETag"]}
        for key in ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1", "ChecksumSHA256"):
            if key in resp:
                part[key] = resp[key]
        return part
