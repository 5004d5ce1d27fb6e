"""The core receiver: turns a set shipped by an edge into a new immutable dataset version.

``POST /v1/edges/{edge}/sets`` with ``Authorization: Bearer <the edge's token>``,
``Content-Type: application/x-tar`` and ``X-Edgecore-Set-Digest`` (see
:func:`edge_sync.archive.set_digest`).  The body streams through
:class:`edge_sync.archive.TarReader`; each image is hashed, identified as a JPEG/PNG and
uploaded (a bounded number in parallel) to
``datasets/<edge>/<version>/images/<SKU>/<sha256>.<ext>`` while the rest still arrives,
so memory does not grow with the set.  The manifest is written last, with a
conditional write, then ``training-data-ready`` is published.

A token belongs to one edge and an edge only writes the dataset named after it.
Versions are allocated with conditional writes of claim objects, so concurrent uploads
never share one.  The set digest is recorded (``claims/sets/<edge>/<digest>.json``) before
any image is written: a retransmission of a set that already has a manifest creates
nothing and re-publishes the event (the listener deduplicates), and a retry of a set
whose first attempt died half-way reuses that attempt's version.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from edge_sync.archive import (
    DIGEST_HEADER,
    END_OF_ARCHIVE,
    Limits,
    Member,
    TarReader,
    UnsupportedMember,
    dataset_path,
)
from edge_sync.archive import set_digest as digest_of
from edge_sync.http import Forbidden, Unauthorized, declared_length, drain, install_error_handlers, media_type
from edgecore.errors import EdgecoreError, InvalidInput, NotFound, PayloadTooLarge
from edgecore.events import TrainingDataReady
from edgecore.layout import Layout, check_name
from edgecore.manifest import FileEntry, Manifest
from edgecore.messaging import EventProducer
from edgecore.preprocessing import open_image
from edgecore.settings import Settings
from edgecore.storage import ObjectStore
from edgecore.versions import claim_next_version

log = logging.getLogger(__name__)
TAR_TYPES = ("application/x-tar", "application/tar")
_MIME = {"jpg": "image/jpeg", "png": "image/png"}


@dataclass(frozen=True)
class Received:
    dataset: str
    version: str
    objects: int
    labels: list[str]
    set_digest: str
    duplicate: bool

    def body(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "objects": self.objects,
            "labels": self.labels,
            "set_digest": self.set_digest,
            "duplicate": self.duplicate,
        }


def load_tokens(settings: Settings) -> dict[str, str]:
    """edge id -> token, from settings and the optional JSON file (names are validated)."""
    tokens = {edge: secret.get_secret_value() for edge, secret in settings.edge_tokens.items()}
    if settings.edge_tokens_file is not None:
        try:
            raw = json.loads(settings.edge_tokens_file.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"edge tokens file {settings.edge_tokens_file}: {exc}") from exc
        if not isinstance(raw, dict):
            raise InvalidInput(f"edge tokens file {settings.edge_tokens_file}: expected an object")
        tokens.update({str(k): str(v) for k, v in raw.items()})
    for edge, token in tokens.items():
        check_name(edge, "edge id")
        if len(token) < 16:
            raise InvalidInput(f"the token of edge {edge} is shorter than 16 characters")
    return tokens


class Receiver:
    def __init__(
        self, settings: Settings, store: ObjectStore, producer: EventProducer, tokens: dict[str, str]
    ) -> None:
        self.settings = settings
        self.store = store
        self.layout = Layout(settings)
        self.producer = producer
        self.tokens = tokens
        self.limits = Limits(settings.max_set_members, settings.max_member_bytes, settings.max_set_bytes)
        # headers, padding, pax records and the end marker on top of the files themselves
        self.max_stream_bytes = settings.max_set_bytes + settings.max_set_members * 2048 + (1 << 20)
        self.concurrency = max(1, settings.receiver_upload_concurrency)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="receiver-upload")
        store.ensure_bucket(self.layout.training_bucket)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def authenticate(self, edge: str, authorization: str | None) -> str:
        check_name(edge, "edge id")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing bearer token")
        owner = next(
            (e for e, t in self.tokens.items() if hmac.compare_digest(t.encode(), token.strip().encode())),
            None,
        )
        if owner is None:
            raise Unauthorized("unknown token")
        if owner != edge:
            raise Forbidden(f"this token belongs to edge {owner}, not {edge}")
        return edge

    # -- retransmissions ---------------------------------------------------------------
    def lookup(self, edge: str, set_digest: str) -> Received | None:
        """The version a set with this digest became, if its manifest exists."""
        marker = self.layout.dataset_set_marker(edge, set_digest)
        try:
            version = json.loads(self.store.get_bytes(marker, max_bytes=4096))["version"]
            raw = self.store.get_bytes(self.layout.dataset_manifest(edge, version))
        except NotFound:
            return None
        manifest = Manifest.from_bytes(raw, f"{edge} {version}")
        return Received(edge, version, len(manifest.files), manifest.labels, set_digest, True)

    def republish(self, received: Received) -> None:
        """At-least-once: a retransmission may follow a crash between manifest and event."""
        loc = self.layout.dataset_manifest(received.dataset, received.version)
        raw = self.store.get_bytes(loc)
        manifest = Manifest.from_bytes(raw, loc.uri)
        self._publish(manifest, hashlib.sha256(raw).hexdigest())

    # -- version allocation ------------------------------------------------------------
    def allocate(self, edge: str, set_digest: str) -> str:
        """A version for this set: the one a previous attempt claimed, or a fresh one."""
        marker = self.layout.dataset_set_marker(edge, set_digest)
        try:  # an earlier attempt of this set died half-way: finish its version
            return str(json.loads(self.store.get_bytes(marker, max_bytes=4096))["version"])
        except NotFound:
            pass
        version = claim_next_version(self.store, self.layout.dataset_versions(edge), f"set:{set_digest}")
        if self.store.put_if_absent(marker, json.dumps({"version": version}).encode()):
            return version
        # Another attempt of this very set got there first: write into its version.
        return str(json.loads(self.store.get_bytes(marker, max_bytes=4096))["version"])

    # -- the transfer ------------------------------------------------------------------
    async def receive(self, edge: str, set_digest: str, request: Request) -> Received:
        version = await run_in_threadpool(self.allocate, edge, set_digest)
        reader = TarReader(self.limits)
        files: dict[str, FileEntry] = {}
        labels: set[str] = set()
        pending: deque[Future[tuple[str, FileEntry, str]]] = deque()
        seen = 0
        stream = request.stream()
        try:
            async for chunk in stream:
                seen += len(chunk)
                if seen > self.max_stream_bytes:
                    raise PayloadTooLarge(f"archive stream exceeds {self.max_stream_bytes} bytes")
                for member in reader.feed(chunk):
                    pending.append(self._pool.submit(self._store_member, edge, version, member))
                    while len(pending) >= self.concurrency:
                        self._collect(await asyncio.wrap_future(pending.popleft()), files, labels)
            reader.close()
            while pending:
                self._collect(await asyncio.wrap_future(pending.popleft()), files, labels)
        except ClientDisconnect as exc:
            for future in pending:
                future.cancel()
            raise InvalidInput(f"edge {edge}: the connection closed inside the archive") from exc
        except EdgecoreError:
            for future in pending:
                future.cancel()
            # Read the rest (bounded) so that the edge receives this answer instead of a broken
            # pipe: a 4xx makes its shipper keep the set aside rather than retry it forever.
            await drain(stream, self.max_stream_bytes)
            raise
        actual = digest_of(files)
        if actual != set_digest:
            raise InvalidInput(f"set digest {set_digest} was declared, the images received make {actual}")
        manifest = Manifest(
            kind="dataset",
            name=edge,
            version=version,
            files=files,
            labels=sorted(labels),
            metadata={"edge": edge, "set_digest": set_digest, "source": "edge-sync"},
        )
        raw = manifest.to_bytes()
        written = await run_in_threadpool(
            self.store.put_if_absent, self.layout.dataset_manifest(edge, version), raw
        )
        if not written:  # a concurrent retransmission of the same set finished first
            received = await run_in_threadpool(self.lookup, edge, set_digest)
            if received is None:
                raise InvalidInput(f"edge {edge} {version}: manifest exists but set marker does not")
            return received
        await run_in_threadpool(self._publish, manifest, hashlib.sha256(raw).hexdigest())
        log.info("edge %s: dataset %s with %d images", edge, version, len(files))
        return Received(edge, version, len(files), manifest.labels, set_digest, False)

    def _store_member(self, edge: str, version: str, member: Member) -> tuple[str, FileEntry, str]:
        image = open_image(member.data, self.settings.max_image_pixels)
        if image.format != ("PNG" if member.ext == "png" else "JPEG"):
            raise UnsupportedMember(f"member {member.name} is a {image.format} image, not {member.ext}")
        sha = hashlib.sha256(member.data).hexdigest()
        loc = self.layout.dataset_image(edge, version, member.sku, sha, member.ext)
        self.store.put_bytes(loc, member.data, _MIME[member.ext])
        entry = FileEntry(sha256=sha, size=len(member.data))
        return dataset_path(member.sku, sha, member.ext), entry, member.sku

    @staticmethod
    def _collect(result: tuple[str, FileEntry, str], files: dict[str, FileEntry], labels: set[str]) -> None:
        path, entry, sku = result
        files[path] = entry
        labels.add(sku)

    def _publish(self, manifest: Manifest, manifest_sha256: str) -> None:
        prefix = self.layout.dataset_prefix(manifest.name, manifest.version)
        event = TrainingDataReady(
            dataset=manifest.name,
            version=manifest.version,
            edge=manifest.name,
            labels=manifest.labels,
            object_count=len(manifest.files),
            bucket=prefix.bucket,
            prefix=prefix.key,
            manifest_sha256=manifest_sha256,
        )
        self.producer.publish(self.settings.topic_training_data_ready, event)


def _digest_header(request: Request) -> str:
    value = request.headers.get(DIGEST_HEADER, "").strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise InvalidInput(f"header {DIGEST_HEADER} must be the set's sha256 (64 hex digits)")
    return value


def create_app(receiver: Receiver) -> FastAPI:
    app = FastAPI(title="edgecore receiver", docs_url=None, redoc_url=None)
    install_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/edges/{edge}/sets/{set_digest}")
    async def lookup(edge: str, set_digest: str, request: Request) -> JSONResponse:
        receiver.authenticate(edge, request.headers.get("authorization"))
        received = await run_in_threadpool(receiver.lookup, edge, set_digest)
        if received is None:
            raise NotFound(f"edge {edge}: no dataset version holds set {set_digest}")
        return JSONResponse(received.body())

    @app.post("/v1/edges/{edge}/sets")
    async def post_set(edge: str, request: Request) -> JSONResponse:
        try:
            receiver.authenticate(edge, request.headers.get("authorization"))
            if media_type(request) not in TAR_TYPES:
                raise UnsupportedMember(f"content type {media_type(request)!r}: send application/x-tar")
            declared = declared_length(request, receiver.max_stream_bytes, "archive")
            if declared is not None and declared < len(END_OF_ARCHIVE):
                raise InvalidInput("empty archive: a set holds at least one image")
            set_digest = _digest_header(request)
        except PayloadTooLarge:
            raise  # do not read a body announced as too big: the connection is closed after the answer
        except EdgecoreError:
            await drain(request.stream(), 1 << 20)
            raise
        previous = await run_in_threadpool(receiver.lookup, edge, set_digest)
        if previous is not None:
            await drain(request.stream(), receiver.max_stream_bytes)
            await run_in_threadpool(receiver.republish, previous)
            return JSONResponse(previous.body(), 200)
        received = await receiver.receive(edge, set_digest, request)
        return JSONResponse(received.body(), 200 if received.duplicate else 201)

    return app
