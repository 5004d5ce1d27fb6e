"""KServe's model repository extension, backed by the edge bucket's serving pointer.

``POST /v2/repository/models/<model>/load`` (KServe calls ``ModelRepository.load``)
reads ``Layout.edge_model_pointer(edge, model)`` (an ``foundation.pointer.ModelPointer``:
model, version, uri), downloads and verifies that version, warms it up in a worker
thread while the current version keeps answering, then switches it in with one
reference assignment.  Loading the version already served is a no-op, so the call is
idempotent.  ``.../unload`` takes the model out of the registry (requests get 404)
until the next ``load``.

How a controller says "serve version X from URI Y"::

    registry.write_pointer(store, layout, edge, ModelPointer(model=model, version=X, uri=Y))
    httpx.post(f"{predictor}/v2/repository/models/{model}/load")   # 200 once X answers

Without a pointer (a fresh edge) the predictor serves the URI it was started with, else the
newest version delivered to the edge's bucket, else the newest published in the registry.
"""

from __future__ import annotations

import asyncio
import logging

from kserve.model_repository import ModelRepository

from foundation.errors import Forbidden, NotFound
from foundation.layout import Layout
from foundation.pointer import ModelPointer
from foundation.registry import StoredVersion, newest_version, read_pointer
from foundation.storage.objects import ObjectReader
from serving.model_version import ModelVersion, VersionStore
from serving.predictor import ProductPredictor

log = logging.getLogger(__name__)


class EdgeModelRepository(ModelRepository):  # type: ignore[misc]
    def __init__(
        self,
        model: str,
        edge: str,
        store: ObjectReader,
        layout: Layout,
        versions: VersionStore,
        initial_uri: str | None,
    ) -> None:
        super().__init__()
        self.model = model
        self._edge = edge
        self._store = store
        self._layout = layout
        self._versions = versions
        self._initial_uri = initial_uri
        self._predictor: ProductPredictor | None = None
        self._lock = asyncio.Lock()

    def attach(self, predictor: ProductPredictor) -> None:
        self._predictor = predictor

    def pointer(self) -> ModelPointer | None:
        return read_pointer(self._store, self._layout, self._edge, self.model)

    def open_current(self, pointer: ModelPointer | None = None) -> ModelVersion:
        """The version the pointer names (read now unless given), else the start-up URI, else the
        newest version delivered to the edge's bucket, else the newest published at the core (where
        this edge can read the registry): a new edge serves without being told where."""
        pointer = pointer or self.pointer()
        if pointer is not None:
            return self._versions.open(pointer.uri)
        if self._initial_uri is not None:
            return self._versions.open(self._initial_uri)
        found = newest_version(self._store, self._layout.edge_models_prefix(self._edge, self.model))
        if found is None:
            found = self._published()
        if found is None:
            raise NotFound(
                f"edge {self._edge} has no version of {self.model} yet: train one "
                f"(edgecore pipeline run --local --edge {self._edge}) or name one with --model-uri"
            )
        log.info("serving %s %s from %s (no serving pointer yet)", self.model, found.version, found.uri)
        return self._versions.open(found.uri)

    def _published(self) -> StoredVersion | None:
        """The newest gated version in the core registry, when this edge's credentials can read it."""
        try:
            return newest_version(self._store, self._layout.models_prefix(self.model))
        except (NotFound, Forbidden):
            return None

    async def load(self, name: str) -> bool:
        if name != self.model or self._predictor is None:
            raise NotFound(f"this predictor serves model {self.model}, not {name}")
        predictor = self._predictor
        async with self._lock:
            pointer = await asyncio.to_thread(self.pointer)
            active = predictor.active
            registered = self.get_model(name) is predictor
            if not (registered and pointer and active and active.version == pointer.version):
                version = await asyncio.to_thread(self.open_current, pointer)
                predictor.serve(version)
                log.info("model %s now serves %s from %s", name, version.version, version.root)
            self.update(predictor, name)
        return True
