"""The model registry in S3: the production version of a model, and claiming new versions.

``models/<model>/<version>/`` holds a version; it exists once its manifest does, and
the newest version with a manifest is the one in production (only versions that passed
the quality gate are ever published).  New version numbers are claimed with an S3
conditional write, so two publishes running at once never get the same number.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgecore.errors import NotFound
from edgecore.layout import MANIFEST, Layout
from edgecore.manifest import Manifest
from edgecore.storage import ObjectStore
from edgecore.versions import known_versions

MAX_MANIFEST_BYTES = 4 * 1_048_576
MAX_CLAIM_TRIES = 100


def production_manifest(store: ObjectStore, layout: Layout, model: str) -> Manifest | None:
    """The newest version whose manifest is written, or None for a model never published."""
    try:
        versions = known_versions(store, layout.model_versions(model))
    except NotFound:  # no registry bucket yet
        return None
    for version in reversed(versions):
        loc = layout.model_manifest(model, version)
        try:
            raw = store.get_bytes(loc, max_bytes=MAX_MANIFEST_BYTES)
        except NotFound:
            continue
        return Manifest.from_bytes(raw, loc.uri)
    return None


def fetch_production(
    store: ObjectStore, layout: Layout, model: str, out: Path, workers: int = 4
) -> Manifest | None:
    """Download the production version into ``out`` (verified), or leave ``out`` empty."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = production_manifest(store, layout, model)
    if manifest is None:
        return None

    def one(name: str) -> None:
        store.download(
            layout.model_file(model, manifest.version, name), out / name, manifest.files[name].sha256
        )

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, sorted(manifest.files)))
    manifest.verify_dir(out)
    (out / MANIFEST).write_bytes(manifest.to_bytes())
    return manifest
