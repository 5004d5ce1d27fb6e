"""The core side of model delivery: the front door's model routes, each edge confined to its own model.

An edge cannot reach the core's storage; it asks the front door, with its token, for
its own model and nothing else:

    GET /v1/edges/{edge}/models/{model}/newest?after=v000003&wait=25[&expect=v000004]
        → 200 the newest version's manifest when it is newer than ``after``; else, once
          ``wait`` seconds passed, 204 (a long poll: the fallback for sites that cannot
          hold a Kafka connection).  ``expect``: the version a ``model-published`` event
          named; the registry is asked at once rather than at the next refresh
    GET /v1/edges/{edge}/models/{model}/versions/{version}/files/{name}
        → one file the manifest lists (the edge checks its sha256 and size)

``model`` must be ``<edge>-products``.  Versions are immutable, so each manifest is read
and each file fetched from the registry once, verified, and served from a local cache to
every edge that asks.
The newest version of each model is looked up at most once per ``refresh_s`` however
many edges wait on it, unless an edge expects a newer one than was found.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from foundation.credentials import Credentials
from foundation.errors import Forbidden, NotFound
from foundation.layout import Layout, edge_models, parse_version
from foundation.registry import StoredVersion, newest_version, read_version
from foundation.storage.objects import ObjectReader

log = logging.getLogger(__name__)
POLL_STEP_S = 0.5
EXPECT_MIN_S = 0.1
"""An edge expecting a version not yet seen makes the registry be asked again, at most this often per
model however many edges expect (an edge cannot turn ``expect`` into unbounded listings)."""
KEEP_VERSIONS = 3


@dataclass
class _Newest:
    version: StoredVersion | None
    at: float


class ModelDoor:
    """Answers edges' questions about their own model from the core's registry."""

    def __init__(
        self,
        reader: ObjectReader,
        layout: Layout,
        credentials: Credentials,
        cache: Path,
        max_wait_s: float,
        refresh_s: float = 1.0,
    ) -> None:
        self.reader = reader
        self.layout = layout
        self.credentials = credentials
        self.cache = cache
        self.max_wait_s = max_wait_s
        self.refresh_s = refresh_s
        self._newest: dict[str, _Newest] = {}
        self._lock = threading.Lock()
        self._fetching: dict[Path, threading.Lock] = {}
        self._versions: dict[tuple[str, str], StoredVersion] = {}
        """Manifests read once: a version is immutable once its manifest exists."""

    def authorize(self, edge: str, model: str, authorization: str | None) -> None:
        """The caller holds ``edge``'s token, and ``model`` is that edge's own."""
        self.credentials.authenticate_edge(edge, authorization, "a model request")
        if model not in edge_models(edge):
            log.warning("refused edge %s: asked for model %s", edge, model[:80])
            raise Forbidden(f"edge {edge} reads only its own models, {' and '.join(edge_models(edge))}")

    def newest(self, model: str, expect: str | None = None) -> StoredVersion | None:
        """The newest complete version, looked up at most once per ``refresh_s`` for all callers
        (sooner when ``expect`` names a version newer than the one found last)."""
        now = time.monotonic()
        with self._lock:
            known = self._newest.get(model)
            stale = known is not None and expect is not None and not _reaches(known.version, expect)
            if known is not None and now - known.at < (EXPECT_MIN_S if stale else self.refresh_s):
                return known.version
        found = newest_version(self.reader, self.layout.models_prefix(model))
        with self._lock:
            self._newest[model] = _Newest(found, time.monotonic())
        return found

    async def wait_newer(
        self, model: str, after: str | None, wait_s: float, expect: str | None = None
    ) -> StoredVersion | None:
        """The newest version once it is newer than ``after`` (None after ``wait_s``)."""
        deadline = time.monotonic() + min(wait_s, self.max_wait_s)
        while True:
            found = await run_in_threadpool(self.newest, model, expect)
            if found is not None and (after is None or parse_version(found.version) > parse_version(after)):
                return found
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(EXPECT_MIN_S if expect is not None else POLL_STEP_S)

    def file(self, model: str, version: str, name: str) -> Path:
        """A listed file of an immutable version, verified into the local cache once."""
        stored = self._version(model, version)
        entry = stored.manifest.files.get(name)
        folder = (self.cache / model / version).resolve()
        path = (folder / name).resolve()
        if entry is None or not path.is_relative_to(folder):
            raise NotFound(f"model {model} {version} lists no file {name[:200]!r}")
        with self._lock:
            fetching = self._fetching.setdefault(path, threading.Lock())
        with fetching:
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                self.reader.download(stored.file(name), path, expected_sha256=entry.sha256)
                self._prune(model)
        return path

    def _version(self, model: str, version: str) -> StoredVersion:
        parse_version(version)
        with self._lock:
            stored = self._versions.get((model, version))
        if stored is None:
            stored = read_version(self.reader, self.layout.model_prefix(model, version))
            with self._lock:
                self._versions[(model, version)] = stored
                kept = sorted((v for m, v in self._versions if m == model), key=parse_version)
                for old in kept[:-KEEP_VERSIONS]:  # as for the files: the newest few per model
                    del self._versions[(model, old)]
        return stored

    def _prune(self, model: str) -> None:
        """Edges ask for the newest versions: copies older than the last ``KEEP_VERSIONS`` go (one asked
        for again is fetched again), so the cache does not grow with every version ever published."""
        versions = sorted(d for d in (self.cache / model).resolve().iterdir() if d.is_dir())
        for old in versions[:-KEEP_VERSIONS]:
            shutil.rmtree(old, ignore_errors=True)
            with self._lock:
                for path in [p for p in self._fetching if p.is_relative_to(old)]:
                    del self._fetching[path]


def _reaches(found: StoredVersion | None, expect: str) -> bool:
    return found is not None and parse_version(found.version) >= parse_version(expect)


def routes(door: ModelDoor) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/edges/{edge}/models/{model}/newest")
    async def newest(
        edge: str,
        model: str,
        request: Request,
        after: str | None = Query(None, pattern=r"^v\d{6}$"),
        wait: float = Query(0.0, ge=0.0),
        expect: str | None = Query(None, pattern=r"^v\d{6}$"),
    ) -> Response:
        door.authorize(edge, model, request.headers.get("authorization"))
        found = await door.wait_newer(model, after, wait, expect)
        if found is None:
            return Response(status_code=204)
        return Response(found.manifest.to_bytes(), media_type="application/json")

    @router.get("/v1/edges/{edge}/models/{model}/versions/{version}/files/{name:path}")
    async def file(edge: str, model: str, version: str, name: str, request: Request) -> FileResponse:
        door.authorize(edge, model, request.headers.get("authorization"))
        path = await run_in_threadpool(door.file, model, version, name)
        return FileResponse(path, media_type="application/octet-stream")

    return router
