"""The edge's own model server (``serving/``), driven through KServe's repository API.

The serving pointer in the edge bucket (``foundation.pointer.ModelPointer``) is this
target's state, the way ``storageUri`` and annotations are an InferenceService's: the
controller writes the version (and the one before it) there, asks the server to
``load``, and then asks the server itself which version answers, with a smoke inference
on stored probe images whose right answer is known (``<probes>/<SKU>/<image>``).
A version that does not load, answers with another version, or gets more probes wrong than
the edge's ``probe_accuracy`` allows (a good model misses the odd one; a broken one misses most) is
rolled back: the pointer goes back to the previous version and the server reloads it.
"""

from __future__ import annotations

import base64
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from edge_sync.delivery.targets.base import SEEN_FOR_S, Deployed, TargetState
from edge_sync.delivery.targets.counters import Counters, read_counters
from foundation.assortment import read_catalogue
from foundation.errors import InvalidInput, NotFound, RolloutFailed, ServiceUnavailable
from foundation.layout import Layout, check_sku
from foundation.pointer import ModelPointer
from foundation.registry import read_pointer, write_pointer
from foundation.storage.store import ObjectStore

log = logging.getLogger(__name__)

PROBE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
MAX_PROBES = 32
MAX_PROBE_BYTES = 2 * 1_048_576
MAX_ANSWER_BYTES = 1_048_576


def load_probes(folder: Path) -> list[tuple[str, bytes]]:
    """(expected SKU, image bytes) for each probe image, bounded in count and size."""
    if not folder.is_dir():
        raise NotFound(f"probe image folder {folder} does not exist")
    probes: list[tuple[str, bytes]] = []
    for path in sorted(folder.glob("*/*")):
        if path.suffix.lower() in PROBE_SUFFIXES and path.is_file():
            if path.stat().st_size > MAX_PROBE_BYTES:
                raise InvalidInput(f"probe image {path} is larger than {MAX_PROBE_BYTES} bytes")
            probes.append((check_sku(path.parent.name), path.read_bytes()))
    if not probes:
        raise NotFound(f"no probe images under {folder} (expected <SKU>/<image>.jpg)")
    return probes[:MAX_PROBES]


class LocalServerTarget:
    local_copy = True

    def __init__(
        self,
        url: str,
        edge: str,
        model: str,
        probes: Path,
        store: ObjectStore,
        layout: Layout,
        load_timeout_s: float = 300.0,
        probe_accuracy: float = 0.9,
    ) -> None:
        self.url = url.rstrip("/")
        self.probe_accuracy = probe_accuracy
        self.edge = edge
        self.model = model
        self.probes = probes
        self._store = store
        self._layout = layout
        self._seen: tuple[float, ModelPointer | None] | None = None
        """What ``state()`` last read, and when: the pointer ``apply`` starts from."""
        self._http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(10.0, read=load_timeout_s))
        self.description = f"local:{self.url}"

    # -- reading back the state --------------------------------------------------------
    def pointer(self) -> ModelPointer | None:
        pointer = read_pointer(self._store, self._layout, self.edge, self.model)
        self._seen = (time.monotonic(), pointer)
        return pointer

    def state(self) -> TargetState:
        p = self.pointer()
        return TargetState(_current(p), _previous(p), p.rejected_version if p else None, bool(p and p.pinned))

    def current(self) -> Deployed | None:
        return _current(self.pointer())

    def previous(self) -> Deployed | None:
        return _previous(self.pointer())

    def rejected(self) -> str | None:
        p = self.pointer()
        return p.rejected_version if p else None

    # -- changing it -------------------------------------------------------------------
    def apply(self, uri: str, version: str) -> Deployed:
        """Point the server at ``version``, load it, probe it; confirm, or put the previous one back.

        The pointer ``state()`` has just read stands in for a fresh read (the controller
        is the pointer's only writer), so a rollout reads it once and writes it twice:
        unconfirmed before the load, confirmed after the probes.
        """
        seen, self._seen = self._seen, None
        before = seen[1] if seen is not None and time.monotonic() - seen[0] < SEEN_FOR_S else self.pointer()
        if before is None or before.version != version or before.uri != uri:
            pointer = ModelPointer(
                model=self.model,
                version=version,
                uri=uri,
                previous_version=before.version if before else None,
                previous_uri=before.uri if before else None,
                rejected_version=before.rejected_version if before else None,
            )
            self._write(pointer)
        else:
            pointer = before
            log.info("%s: resuming the rollout of %s", self.description, version)
        try:
            self._load()
            self._smoke(version)
        except RolloutFailed as exc:
            self._restore(pointer, str(exc))
            raise RolloutFailed(f"{self.description}: {version} rolled back: {exc}") from exc
        confirmed = pointer.model_copy(update={"synced_at": datetime.now(UTC)})
        self._write(confirmed)
        return Deployed(version, uri, confirmed.synced_at)

    def rollback(self, why: str = "an operator rolled it back", pin: bool = True) -> Deployed | None:
        p = self.pointer()
        if p is not None and p.previous_version and p.previous_uri:
            self._restore(p, why, pin=pin)
        return self.current()

    def unpin(self) -> None:
        p = self.pointer()
        if p is not None and p.pinned:
            self._write(p.model_copy(update={"pinned": False}))

    def counters(self) -> Counters | None:
        return read_counters(self._http, f"{self.url}/metrics", self.model, 5.0)

    def _restore(self, p: ModelPointer, why: str, pin: bool = False) -> None:
        if not p.previous_version or not p.previous_uri:
            log.error(
                "%s: %s failed (%s) and there is no previous version to restore",
                self.description,
                p.version,
                why,
            )
            self._write(p.model_copy(update={"rejected_version": p.version}))
            return
        log.warning(
            "%s: restoring %s after %s failed: %s", self.description, p.previous_version, p.version, why
        )
        self._write(
            ModelPointer(
                model=self.model,
                version=p.previous_version,
                uri=p.previous_uri,
                rejected_version=p.version,
                pinned=pin,
                synced_at=datetime.now(UTC),
            )
        )
        try:
            self._load()
        except RolloutFailed as exc:
            log.error("%s: reloading %s failed too: %s", self.description, p.previous_version, exc)

    def _write(self, pointer: ModelPointer) -> None:
        write_pointer(self._store, self._layout, self.edge, pointer)

    # -- talking to the server ---------------------------------------------------------
    def _load(self) -> None:
        try:
            resp = self._http.post(f"/v2/repository/models/{self.model}/load")
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"{self.description}: model server unreachable: {exc}") from exc
        if resp.status_code != 200:
            raise RolloutFailed(f"load answered {resp.status_code}: {resp.text[:300]}")

    def _smoke(self, version: str) -> None:
        """Every probe of a product the edge sells must be answered with that product.

        A product the version does not know counts as wrong, so a version that forgot what
        the store sells does not stay; probes of retired products are not asked.
        """
        catalogue = read_catalogue(self._store, self._layout.edge_catalogue_home(self.edge))
        sold = set(catalogue.skus) if catalogue is not None else None
        probes = [(sku, image) for sku, image in load_probes(self.probes) if sold is None or sku in sold]
        if not probes:
            raise RolloutFailed(f"no probe images of the products edge {self.edge} sells under {self.probes}")
        unprobed = sorted((sold or set()) - {sku for sku, _ in probes})
        if unprobed:
            log.warning(
                "%s: no probe images of %s; add them under %s", self.description, unprobed, self.probes
            )
        answers = self._predict([image for _, image in probes], want=version)
        wrong = [(sku, got) for (sku, _), got in zip(probes, answers[1:], strict=True) if got != sku]
        if len(wrong) > len(probes) * (1.0 - self.probe_accuracy) + 1e-9:
            raise RolloutFailed(
                f"{version} got {len(wrong)} of {len(probes)} probe images wrong: {wrong[:3]}"
            )

    def _predict(self, images: list[bytes], want: str | None = None) -> list[str]:
        """[serving version, top-1 SKU of each image] from one V1 predict call."""
        body = {"instances": [{"image_bytes": {"b64": base64.b64encode(i).decode()}} for i in images]}
        try:
            resp = self._http.post(f"/v1/models/{self.model}:predict", json=body)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"{self.description}: model server unreachable: {exc}") from exc
        if resp.status_code != 200 or len(resp.content) > MAX_ANSWER_BYTES:
            raise RolloutFailed(f"smoke inference answered {resp.status_code}: {resp.text[:300]}")
        answer: dict[str, Any] = resp.json()
        served = str(answer.get("model_version"))
        if want is not None and served != want:
            raise RolloutFailed(f"the server answers with version {served}, not {want}")
        predictions = answer.get("predictions") or []
        return [served, *(str(p.get("sku")) for p in predictions)]

    def close(self) -> None:
        self._http.close()


def _current(p: ModelPointer | None) -> Deployed | None:
    return Deployed(p.version, p.uri, p.synced_at) if p else None


def _previous(p: ModelPointer | None) -> Deployed | None:
    if p is None or not p.previous_version or not p.previous_uri:
        return None
    return Deployed(p.previous_version, p.previous_uri)
