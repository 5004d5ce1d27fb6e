"""ingest: snapshot the dataset versions an edge's model trains on, from S3 to a local folder.

The snapshot holds the images whose SKU the edge's catalogue lists (from every
requested dataset version, plus the edge's labelled hard examples), the catalogue
itself, and a manifest that names the exact dataset versions used, so a run can be
reproduced and audited.  Every file is verified against its sha256 on the way down.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edgecore.catalogue import Catalogue
from edgecore.errors import InvalidInput, NotFound
from edgecore.layout import (
    CATALOGUE_FILE,
    MANIFEST,
    Layout,
    Location,
    check_extension,
    check_name,
    check_sku,
    parse_version,
    version_of_key,
)
from edgecore.manifest import Manifest, entries_for_dir
from edgecore.storage import ObjectStore

IMAGES_DIR = "images"
MAX_MANIFEST_BYTES = 64 * 1_048_576
MAX_CATALOGUE_BYTES = 1_048_576


@dataclass(frozen=True)
class DatasetRef:
    """``name`` (its newest complete version) or ``name@v000003`` (that version)."""

    name: str
    version: str | None

    @classmethod
    def parse(cls, text: str) -> DatasetRef:
        name, _, version = text.strip().partition("@")
        check_name(name, "dataset name")
        if version:
            parse_version(version)
        return cls(name, version or None)


def newest_version(store: ObjectStore, layout: Layout, dataset: str) -> str:
    """The highest version whose manifest is written (a version without one is in progress)."""
    prefix = layout.datasets_prefix(dataset)
    versions = sorted(
        (v for key in store.list_prefixes(prefix) if (v := version_of_key(key, prefix.key))),
        key=parse_version,
        reverse=True,
    )
    for version in versions:
        if store.exists(layout.dataset_manifest(dataset, version)):
            return version
    raise NotFound(f"dataset {dataset!r} has no complete version under {prefix.uri}")


def dataset_manifest(store: ObjectStore, layout: Layout, ref: DatasetRef) -> Manifest:
    version = ref.version or newest_version(store, layout, ref.name)
    loc = layout.dataset_manifest(ref.name, version)
    try:
        raw = store.get_bytes(loc, max_bytes=MAX_MANIFEST_BYTES)
    except NotFound as exc:
        raise NotFound(f"dataset {ref.name!r} version {version} does not exist ({loc.uri})") from exc
    manifest = Manifest.from_bytes(raw, loc.uri)
    if manifest.kind != "dataset" or manifest.name != ref.name or manifest.version != version:
        raise InvalidInput(f"{loc.uri} describes {manifest.kind} {manifest.name} {manifest.version}")
    return manifest


def edge_catalogue(store: ObjectStore, layout: Layout, edge: str) -> Catalogue:
    loc = layout.edge_catalogue(edge)
    try:
        catalogue = Catalogue.from_bytes(store.get_bytes(loc, max_bytes=MAX_CATALOGUE_BYTES))
    except NotFound as exc:
        raise NotFound(f"edge {edge!r} has no catalogue at {loc.uri}") from exc
    if catalogue.edge != edge:
        raise InvalidInput(f"{loc.uri} is the catalogue of edge {catalogue.edge!r}, not {edge!r}")
    return catalogue


def ingest(
    store: ObjectStore,
    layout: Layout,
    edge: str,
    datasets: list[str],
    out: Path,
    hard_examples: bool = True,
    workers: int = 8,
) -> Manifest:
    """Download the edge's images into ``out/images/<SKU>/<sha256>.<ext>``; return the snapshot manifest."""
    if not datasets:
        raise InvalidInput("no dataset requested")
    catalogue = edge_catalogue(store, layout, edge)
    wanted = set(catalogue.skus)
    downloads: dict[str, tuple[Location, str]] = {}  # local name -> (source, sha256 or '')
    used: list[str] = []
    for text in datasets:
        ref = DatasetRef.parse(text)
        manifest = dataset_manifest(store, layout, ref)
        used.append(f"{manifest.name}@{manifest.version}")
        prefix = layout.dataset_prefix(manifest.name, manifest.version)
        for name, entry in manifest.files.items():
            parts = name.split("/")
            if len(parts) != 3 or parts[0] != IMAGES_DIR or parts[1] not in wanted:
                continue
            ext = check_extension(name.rsplit(".", 1)[-1])
            local = f"{IMAGES_DIR}/{parts[1]}/{entry.sha256}.{ext}"
            downloads[local] = (Location(prefix.bucket, prefix.key + name), entry.sha256)
    hard = _hard_examples(store, layout, edge, wanted) if hard_examples else {}
    downloads.update(hard)

    def fetch(item: tuple[str, tuple[Location, str]]) -> None:
        local, (loc, sha) = item
        # Hard examples have no manifest: their recorded sha256 metadata is checked instead.
        store.download(loc, out / local, expected_sha256=sha or None)

    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fetch, sorted(downloads.items())))
    per_label = {sku: len(list((out / IMAGES_DIR / sku).glob("*"))) for sku in catalogue.skus}
    empty = sorted(sku for sku, n in per_label.items() if n == 0)
    if empty:
        raise InvalidInput(f"edge {edge}: no images for catalogue SKUs {empty} in datasets {', '.join(used)}")
    (out / CATALOGUE_FILE).write_bytes(catalogue.to_bytes())
    snapshot = Manifest(
        kind="dataset",
        name=f"{edge}-snapshot",
        version="+".join(used),
        files=entries_for_dir(out),
        labels=catalogue.skus,
        metadata={"edge": edge, "datasets": used, "hard_examples": len(hard), "per_label": per_label},
    )
    (out / MANIFEST).write_bytes(snapshot.to_bytes())
    return snapshot


def _hard_examples(
    store: ObjectStore, layout: Layout, edge: str, wanted: set[str]
) -> dict[str, tuple[Location, str]]:
    """Labelled hard examples of the edge for SKUs it still sells (``hard-examples/<SKU>/<id>``)."""
    prefix = layout.hard_examples_prefix(edge)
    found: dict[str, tuple[Location, str]] = {}
    for obj in store.list(prefix):
        parts = obj.location.key[len(prefix.key) :].split("/")
        if len(parts) != 2 or parts[0] not in wanted:
            continue
        try:
            check_sku(parts[0])
            ext = check_extension(parts[1].rsplit(".", 1)[-1])
        except InvalidInput:
            continue
        key_digest = hashlib.sha256(obj.location.key.encode()).hexdigest()[:16]
        found[f"{IMAGES_DIR}/{parts[0]}/hard-{key_digest}.{ext}"] = (obj.location, "")
    return found
