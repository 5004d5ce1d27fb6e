"""One model version, loaded, checked and warmed up, ready to answer.

A version comes from a local directory or an ``s3://`` prefix, which is downloaded with
every file checked against its manifest's sha256 (``foundation.registry``).  Nothing is
served before the folder holds every file its manifest lists at the listed size, its
labels match its catalogue, and a warm-up inference gives finite probabilities of the
right shape (and a cosine, where its open-set rule is on one): a half-copied or tampered
version never reaches a kiosk.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from foundation.catalogue import Catalogue
from foundation.errors import IntegrityError, InvalidInput, NotFound
from foundation.layout import (
    CATALOGUE_FILE,
    LABELS_FILE,
    MANIFEST,
    SAVED_MODEL_DIR,
    TFLITE_FILE,
    Location,
    check_name,
    parse_version,
)
from foundation.manifest import Manifest
from foundation.modelcar import pull_version
from foundation.oci import Reference, Registry
from foundation.openset import OPENSET_FILE, Decision, OpenSet, decide
from foundation.registry import fetch_verified, read_version
from foundation.settings import Settings
from foundation.storage.objects import ObjectReader
from serving.runners import LiteRTRunner, Runner, SavedModelRunner


@dataclass(frozen=True)
class ModelVersion:
    """Everything one request needs from the version that answers it."""

    name: str
    version: str
    labels: tuple[str, ...]
    catalogue: Catalogue
    manifest: Manifest
    runner: Runner
    root: Path
    products: tuple[dict[str, Any], ...]
    """Catalogue data of each label, in output order, ready to put in an answer."""
    products_json: tuple[str, ...]
    openset: OpenSet | None = None
    """The version's calibration and unseen-product rule; None for one shipped without."""

    def decide(self, pixels: npt.NDArray[np.float32], min_confidence: float) -> Decision:
        """What the model answers for each image, and whether it knows the product shown."""
        return decide(self.runner(pixels), self.openset, min_confidence)

    def warm_up(self, image_size: int) -> None:
        """Run a few inferences so the first kiosk request is not the one paying for it."""
        blank = np.full((1, image_size, image_size, 3), 0.5, dtype=np.float32)
        for _ in range(3):
            out = self.runner(blank)
        if out.probabilities.shape != (1, len(self.labels)) or not np.all(np.isfinite(out.probabilities)):
            raise IntegrityError(
                f"model {self.name} {self.version}: warm-up produced {out.probabilities.shape}, "
                f"expected (1, {len(self.labels)}) finite probabilities"
            )
        needs_cosine = self.openset is not None and self.openset.min_cosine is not None
        cosine = out.cosine
        cosine_ok = cosine is not None and cosine.shape == (1,) and bool(np.isfinite(cosine).all())
        if needs_cosine and not cosine_ok:
            raise IntegrityError(
                f"model {self.name} {self.version}: its open-set rule needs one finite cosine per image, "
                "which its model does not give"
            )


def open_version(root: Path, settings: Settings, prefer: str = "litert") -> ModelVersion:
    """Verify a version directory against its manifest and build its runner."""
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise NotFound(f"{root}: no {MANIFEST}, so not a published model version")
    manifest = Manifest.from_bytes(manifest_path.read_bytes(), str(manifest_path))
    if manifest.kind != "model":
        raise IntegrityError(f"{manifest_path}: kind is {manifest.kind!r}, not 'model'")
    check_name(manifest.name, "model name")
    parse_version(manifest.version)
    for required in (LABELS_FILE, CATALOGUE_FILE):
        if required not in manifest.files:
            raise IntegrityError(f"model {manifest.name} {manifest.version}: manifest lists no {required}")
    manifest.verify_dir(root, digests=False)

    labels = _read_labels(root / LABELS_FILE, manifest)
    catalogue = Catalogue.from_bytes((root / CATALOGUE_FILE).read_bytes())
    missing = sorted(set(labels) - set(catalogue.skus))
    if missing:
        raise IntegrityError(
            f"model {manifest.name} {manifest.version}: labels {missing} are not in its catalogue"
        )
    runner = _build_runner(root, manifest, settings.images.size, prefer)
    openset_path = root / OPENSET_FILE
    openset = (
        OpenSet.from_bytes(openset_path.read_bytes(), str(openset_path))
        if OPENSET_FILE in manifest.files
        else None
    )
    products = tuple(_product_answer(catalogue, sku) for sku in labels)
    version = ModelVersion(
        name=manifest.name,
        version=manifest.version,
        labels=tuple(labels),
        catalogue=catalogue,
        manifest=manifest,
        runner=runner,
        root=root,
        products=products,
        products_json=tuple(json.dumps(p) for p in products),
        openset=openset,
    )
    version.warm_up(settings.images.size)
    return version


def _product_answer(catalogue: Catalogue, sku: str) -> dict[str, Any]:
    product = catalogue.product(sku)
    return {
        "name": product.name,
        "price": str(product.price),
        "currency": catalogue.currency,
        "promotion": product.promotion,
    }


def _read_labels(path: Path, manifest: Manifest) -> list[str]:
    try:
        labels = json.loads(path.read_bytes())
    except ValueError as exc:
        raise IntegrityError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise IntegrityError(f"{path}: expected a non-empty JSON list of SKUs")
    if manifest.labels and manifest.labels != labels:
        raise IntegrityError(f"{path}: labels differ from the manifest's labels")
    return labels


def _build_runner(root: Path, manifest: Manifest, image_size: int, prefer: str) -> Runner:
    has_tflite = TFLITE_FILE in manifest.files
    has_saved = any(name.startswith(SAVED_MODEL_DIR + "/") for name in manifest.files)
    if (prefer == "litert" or not has_saved) and has_tflite:
        return LiteRTRunner(root / TFLITE_FILE, image_size)
    if has_saved:
        return SavedModelRunner(root / SAVED_MODEL_DIR)
    raise IntegrityError(
        f"model {manifest.name} {manifest.version}: neither {TFLITE_FILE} nor {SAVED_MODEL_DIR}/ is listed"
    )


CACHED_VERSIONS = 3
"""Copies kept per model (and of modelcars): the one served, the one a rollback returns to,
and one being rolled out.  Older ones are deleted, or every version ever served would
stay on a store's disk."""


class VersionStore:
    """Fetches ``s3://`` and ``oci://`` versions, verified, into a local cache.

    ``registries``: who pulls modelcars, by registry host (an edge's front-door login; the core's
    registry where this server runs at the core).  The cache keeps the :data:`CACHED_VERSIONS`
    most recently loaded copies of each model, and of modelcars (one pool); a version loaded
    from a deleted copy keeps running (its files stay open), and is fetched again if it is
    ever loaded again.
    """

    def __init__(
        self,
        reader: ObjectReader,
        cache: Path,
        settings: Settings,
        registries: dict[str, Registry] | None = None,
    ) -> None:
        self._reader = reader
        self._cache = cache
        self._settings = settings
        self._registries = registries or {}

    def fetch(self, uri: str) -> Path:
        """A local copy of the version at ``uri``: every downloaded file's sha256 checked.

        A directory (a copy the edge's sync controller already verified, or one an
        operator names) is used in place; :func:`open_version` checks that it holds
        every listed file at its listed size, so a half-copied folder is refused.
        """
        if uri.startswith("oci://"):
            return self._pull(Reference.parse(uri))
        if not uri.startswith("s3://"):
            root = Path(uri.removeprefix("file://"))
            if not root.is_dir():
                raise NotFound(f"model version directory {root} does not exist")
            return root
        try:
            stored = read_version(self._reader, Location.parse(uri.rstrip("/") + "/"))
        except NotFound as exc:
            raise NotFound(f"no model version at {uri} (no manifest): {exc}") from exc
        dest = self._cache / check_name(stored.name, "model name") / stored.version
        return fetch_verified(self._reader, stored, dest).path or dest

    def _pull(self, ref: Reference) -> Path:
        """A modelcar's files, checked against the manifest it carries; each digest is pulled once."""
        registry = self._registries.get(ref.registry)
        if registry is None:
            raise InvalidInput(f"this server has no login to the registry {ref.registry} (modelcars)")
        pinned = registry.resolve(ref)
        assert pinned.digest is not None
        dest = self._cache / "modelcars" / pinned.digest.removeprefix("sha256:")[:32]
        if (dest / MANIFEST).is_file():
            try:
                Manifest.from_bytes((dest / MANIFEST).read_bytes(), str(dest)).verify_dir(dest)
                return dest
            except (IntegrityError, InvalidInput):
                pass
        pull_version(registry, pinned, dest)
        return dest

    def open(self, uri: str, prefer: str = "litert") -> ModelVersion:
        """The version at ``uri``, loaded; only then are older copies in the cache deleted, so
        versions that fail to load never push out the one served or the one to roll back to."""
        root = self.fetch(uri)
        version = open_version(root, self._settings, prefer)
        if root.is_relative_to(self._cache):
            _keep_newest(root)
        return version


def _keep_newest(used: Path) -> None:
    """Mark ``used`` as just used, and delete its siblings beyond the newest :data:`CACHED_VERSIONS`.

    Only finished copies count: a folder still being fetched (hidden, or ``.partial``) is
    another fetch's, and one that vanishes meanwhile (another server pruning) is skipped.
    """
    os.utime(used)
    copies: list[tuple[float, Path]] = []
    for sibling in used.parent.iterdir():
        if sibling.name.startswith(".") or sibling.name.endswith(".partial"):
            continue
        try:
            if sibling.is_dir():
                copies.append((sibling.stat().st_mtime, sibling))
        except OSError:
            continue
    copies.sort(key=lambda item: item[0], reverse=True)
    for _, stale in copies[CACHED_VERSIONS:]:
        if stale != used:
            shutil.rmtree(stale, ignore_errors=True)
