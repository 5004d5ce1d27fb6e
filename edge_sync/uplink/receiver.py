"""The core receiver: turns a set shipped by an edge into a new immutable dataset version.

``POST /v1/edges/{edge}/sets`` (on the front door, ``edge_sync.frontdoor``) with
``Authorization: Bearer <the edge's token>``,
``Content-Type: application/x-tar`` and ``X-Edgecore-Set-Digest`` (see
:func:`edge_sync.uplink.archive.set_digest`).  The body streams through
:class:`edge_sync.uplink.archive.TarReader`; each image is hashed, identified as a JPEG/PNG and
checked whole by its structure (a bounded number in parallel;
:func:`foundation.preprocessing.check_complete`: the gateway already decoded it, and
``prepare`` decodes it again and drops, by name, one whose pixels are damaged), then
appended, as ``images/<SKU>/<sha256>.<ext>``, to one tar shard of the version,
``datasets/<edge>/<version>/shards/<id>.tar``, written by a multipart upload whose parts
go up while the rest still arrives (:class:`foundation.storage.multipart.MultipartWriter`),
so memory does not grow with the set.
One object per set instead of one PUT per image is what lets the transfer run at the
speed of a plain multipart upload.  The shard only becomes visible once every member
passed; a refused set aborts the upload.  The manifest, written last with a
conditional write, lists each image's sha256, size, shard and offset; then
``training-data-ready`` is published.

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
import json
import logging
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from edge_sync.uplink.archive import (
    DIGEST_HEADER,
    END_OF_ARCHIVE,
    Limits,
    Member,
    TarReader,
    dataset_path,
    padding,
    shard_member_header,
)
from edge_sync.uplink.archive import set_digest as digest_of
from edge_sync.uplink.http import declared_length, drain, media_type, read_bounded
from edge_sync.uplink.metrics import UplinkMetrics
from foundation.assortment import MAX_CATALOGUE_BYTES, ShippedCatalogue, merge_shipped
from foundation.credentials import Credentials
from foundation.errors import (
    EdgecoreError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    SetDigestMismatch,
    UnsupportedMedia,
)
from foundation.events import TrainingDataReady
from foundation.layout import SHARDS_BESIDE_VERSIONS, Layout, Location
from foundation.manifest import FileEntry, Manifest
from foundation.messaging import EventProducer
from foundation.preprocessing import check_complete
from foundation.registry import claim_next_version
from foundation.settings import UplinkSettings
from foundation.storage.multipart import MultipartWriter
from foundation.storage.store import ObjectStore
from foundation.storage.wire import S3Wire

log = logging.getLogger(__name__)
TAR_TYPES = ("application/x-tar", "application/tar")


@dataclass(frozen=True)
class Checked:
    """An image that passed every check, with its digest, waiting for its place in the shard."""

    member: Member
    sha256: str

    @property
    def path(self) -> str:
        return dataset_path(self.member.sku, self.sha256, self.member.ext)


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


class Receiver:
    def __init__(
        self,
        uplink: UplinkSettings,
        max_pixels: int,
        part_bytes: int,
        store: ObjectStore,
        wire: S3Wire,
        layout: Layout,
        producer: EventProducer,
        topic: str,
        credentials: Credentials,
    ) -> None:
        """Composed by ``edge_sync.frontdoor.build_receiver``; ``topic``: training-data-ready."""
        self.max_pixels = max_pixels
        self.store = store
        self.wire = wire
        self.layout = layout
        self.producer = producer
        self.topic = topic
        self.credentials = credentials
        self.limits = Limits(uplink.max_set_members, uplink.max_member_bytes, uplink.max_set_bytes)
        # headers, padding, pax records and the end marker on top of the files themselves
        self.max_stream_bytes = uplink.max_set_bytes + uplink.max_set_members * 2048 + (1 << 20)
        self.concurrency = max(1, uplink.receiver_upload_concurrency)
        self.parts_in_flight = max(1, uplink.receiver_parts_in_flight)
        self.part_bytes = part_bytes
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="receiver-check")
        self._parts = ThreadPoolExecutor(self.parts_in_flight, thread_name_prefix="receiver-part")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._parts.shutdown(wait=True)

    def authenticate(self, edge: str, authorization: str | None) -> str:
        """The caller holds ``edge``'s token: an edge writes only its own dataset (refusals logged)."""
        self.credentials.authenticate_edge(edge, authorization, "a set")
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
        """Stream the set into a new shard; only a set that passed every check gets a version.

        The shard lives beside the dataset's versions (``datasets/<edge>/shards/<id>.tar``),
        so it is written before any version is claimed: a refused set claims no number, and
        versions are numbered in the order their sets became complete.
        """
        shard = self.layout.shard_path(uuid.uuid4().hex)
        writer = await run_in_threadpool(
            MultipartWriter,
            self.store,
            self.wire,
            self.layout.dataset_shard(edge, shard),
            self._parts,
            self.part_bytes,
            self.parts_in_flight,
            "application/x-tar",
        )
        files: dict[str, FileEntry] = {}
        try:
            await self._stream(edge, request, writer, shard, files)
            actual = digest_of(files)
            if actual != set_digest:
                raise SetDigestMismatch(
                    f"set digest {set_digest} was declared, the images received make {actual}"
                )
            writer.write(END_OF_ARCHIVE)
            await run_in_threadpool(writer.complete)
        except BaseException:
            await run_in_threadpool(writer.abort)
            raise
        return await run_in_threadpool(self._commit, edge, set_digest, files, shard, writer.loc)

    def _commit(
        self, edge: str, set_digest: str, files: dict[str, FileEntry], shard: str, stored: Location
    ) -> Received:
        """Claim the set's version, write its manifest last, announce it."""
        version = self.allocate(edge, set_digest)
        manifest = Manifest(
            kind="dataset",
            name=edge,
            version=version,
            files=files,
            labels=sorted({path.split("/")[1] for path in files}),
            metadata={
                "edge": edge,
                "set_digest": set_digest,
                "source": "edge-sync",
                "shards": [shard],
                "shard_root": SHARDS_BESIDE_VERSIONS,
            },
        )
        raw = manifest.to_bytes()
        if not self.store.put_if_absent(self.layout.dataset_manifest(edge, version), raw):
            # a concurrent retransmission of the same set finished first: its manifest names its shard
            self.store.delete(stored)
            received = self.lookup(edge, set_digest)
            if received is None:
                raise InvalidInput(f"edge {edge} {version}: manifest exists but set marker does not")
            return received
        self._publish(manifest, hashlib.sha256(raw).hexdigest())
        log.info("edge %s: dataset %s with %d images in %s", edge, version, len(files), shard)
        return Received(edge, version, len(files), manifest.labels, set_digest, False)

    async def _stream(
        self, edge: str, request: Request, writer: MultipartWriter, shard: str, files: dict[str, FileEntry]
    ) -> None:
        """Parse, check and pack the body; returns once the archive ended and every image is packed."""
        reader = TarReader(self.limits)
        pending: deque[Future[Checked]] = deque()
        seen = 0
        stream = request.stream()
        try:
            async for chunk in stream:
                seen += len(chunk)
                if seen > self.max_stream_bytes:
                    raise PayloadTooLarge(f"archive stream exceeds {self.max_stream_bytes} bytes")
                for member in reader.feed(chunk):
                    pending.append(self._pool.submit(self._check_member, member))
                    while len(pending) >= self.concurrency:
                        await self._pack(await asyncio.wrap_future(pending.popleft()), writer, shard, files)
            reader.close()
            while pending:
                await self._pack(await asyncio.wrap_future(pending.popleft()), writer, shard, files)
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

    def _check_member(self, member: Member) -> Checked:
        image = check_complete(member.data, self.max_pixels)
        if image.format != ("PNG" if member.ext == "png" else "JPEG"):
            raise UnsupportedMedia(f"member {member.name} is a {image.format} image, not {member.ext}")
        return Checked(member, hashlib.sha256(member.data).hexdigest())

    @staticmethod
    async def _pack(
        checked: Checked, writer: MultipartWriter, shard: str, files: dict[str, FileEntry]
    ) -> None:
        """Append one image to the shard (in arrival order) and record where it lies."""
        data = checked.member.data
        path = checked.path
        if path in files:  # the same image twice under one label: keep one copy
            return
        writer.write(shard_member_header(path, len(data)))
        files[path] = FileEntry(sha256=checked.sha256, size=len(data), shard=shard, offset=writer.size)
        writer.write(data)
        writer.write(padding(len(data)))
        while (busy := writer.backlog()) is not None:
            await asyncio.wrap_future(busy)

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
        self.producer.publish(self.topic, event)


def _digest_header(request: Request) -> str:
    value = request.headers.get(DIGEST_HEADER, "").strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise InvalidInput(f"header {DIGEST_HEADER} must be the set's sha256 (64 hex digits)")
    return value


def routes(receiver: Receiver, metrics: UplinkMetrics) -> APIRouter:
    """The set routes of the front door (``edge_sync.frontdoor``)."""
    app = APIRouter()

    @app.get("/v1/edges/{edge}/sets/{set_digest}")
    async def lookup(edge: str, set_digest: str, request: Request) -> JSONResponse:
        receiver.authenticate(edge, request.headers.get("authorization"))
        received = await run_in_threadpool(receiver.lookup, edge, set_digest)
        if received is None:
            raise NotFound(f"edge {edge}: no dataset version holds set {set_digest}")
        return JSONResponse(received.body())

    @app.put("/v1/edges/{edge}/catalogue")
    async def put_catalogue(edge: str, request: Request) -> JSONResponse:
        """The store's catalogue, sent before its sets: merged into the core's copy, later change winning."""
        receiver.authenticate(edge, request.headers.get("authorization"))
        raw = await read_bounded(request, MAX_CATALOGUE_BYTES, "catalogue")
        try:
            incoming = ShippedCatalogue.from_bytes(raw, edge)
        except ValidationError as exc:
            raise InvalidInput(f"not a catalogue: {exc.errors()[0]['msg']}") from exc
        home = receiver.layout.core_catalogue_home(edge)
        changed = await run_in_threadpool(merge_shipped, receiver.store, home, incoming, f"edge {edge}")
        if changed:
            log.info("edge %s: catalogue changes %s merged at the core", edge, changed)
        return JSONResponse({"changed": changed})

    @app.post("/v1/edges/{edge}/sets")
    async def post_set(edge: str, request: Request) -> JSONResponse:
        try:
            receiver.authenticate(edge, request.headers.get("authorization"))
            if media_type(request) not in TAR_TYPES:
                raise UnsupportedMedia(f"content type {media_type(request)!r}: send application/x-tar")
            declared = declared_length(request, receiver.max_stream_bytes, "archive")
            if declared is not None and declared < len(END_OF_ARCHIVE):
                raise InvalidInput("empty archive: a set holds at least one image")
            set_digest = _digest_header(request)
        except EdgecoreError as exc:
            log.warning("set of edge %s refused: %s: %s", edge[:64], type(exc).__name__, exc)
            if not isinstance(exc, PayloadTooLarge):  # a body announced as too big is not read at all
                await drain(request.stream(), 1 << 20)
            raise
        previous = await run_in_threadpool(receiver.lookup, edge, set_digest)
        if previous is not None:
            await drain(request.stream(), receiver.max_stream_bytes)
            await run_in_threadpool(receiver.republish, previous)
            return JSONResponse(previous.body(), 200)
        try:
            received = await receiver.receive(edge, set_digest, request)
        except EdgecoreError as exc:  # refused, or the core failed: on record with the edge and the reason
            log.warning("set %s… of edge %s refused: %s: %s", set_digest[:12], edge, type(exc).__name__, exc)
            raise
        if not received.duplicate:
            metrics.sets.inc()
            metrics.images.inc(received.objects)
        return JSONResponse(received.body(), 200 if received.duplicate else 201)

    return app
