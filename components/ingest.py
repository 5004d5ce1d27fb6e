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
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:  # boto3 takes a while to import; prepare/train read IMAGES_DIR without S3
    from edgecore.storage import ObjectStore

IMAGES_DIR = "images"
MAX_MANIFEST_BYTES = 64 * 1_048_576
MAX_CATALOGUE_BYTES = 1_048_576


@dataclass(frozen=True)
class Source:
    """Where a snapshot file comes from: its own object, or a slice of a dataset's tar shard.

    Sets shipped by edges are stored as one shard per version (``offset``, ``size``
    locate the image in it); uploaded folders keep one object per image.  Both are
    verified against the manifest's sha256; ``sha256`` is empty only for hard examples,
    which have no manifest and are checked against their recorded digest instead.
    """

    loc: Location
    sha256: str
    offset: int | None = None
    size: int = 0


@dataclass(frozen=True)
class DatasetRef:
    """``name`` (newest complete version), ``name@v000003`` (that version) or ``name@..v000003``.

    The history form is how an edge's dataset is trained on: each set a store ships is a
    new version holding one product's photos, so a model needs every version up to the
    newest, not only the newest.  Bounding it by a version keeps the run reproducible.
    """

    name: str
    version: str | None
    history: bool = False

    @classmethod
    def parse(cls, text: str) -> DatasetRef:
        name, _, version = text.strip().partition("@")
        check_name(name, "dataset name")
        history = version.startswith("..")
        version = version.removeprefix("..")
        if history and not version:
            raise InvalidInput(f"{text!r}: a history reference names its last version, e.g. {name}@..v000003")
        if version:
            parse_version(version)
        return cls(name, version or None, history)


def complete_versions(store: ObjectStore, layout: Layout, dataset: str) -> list[str]:
    """Versions whose manifest is written, oldest first (a version without one is in progress)."""
    prefix = layout.datasets_prefix(dataset)
    versions = sorted(
        (v for key in store.list_prefixes(prefix) if (v := version_of_key(key, prefix.key))),
        key=parse_version,
    )
    return [v for v in versions if store.exists(layout.dataset_manifest(dataset, v))]


def resolve(store: ObjectStore, layout: Layout, ref: DatasetRef) -> list[str]:
    """The exact versions a reference means, oldest first."""
    if not ref.history or ref.version is None:
        return [ref.version or newest_version(store, layout, ref.name)]
    last = parse_version(ref.version)
    chosen = [v for v in complete_versions(store, layout, ref.name) if parse_version(v) <= last]
    if not chosen or chosen[-1] != ref.version:
        raise NotFound(
            f"dataset {ref.name!r} version {ref.version} does not exist (history {ref.name}@..{ref.version})"
        )
    return chosen


def newest_version(store: ObjectStore, layout: Layout, dataset: str) -> str:
    """The highest complete version."""
    versions = complete_versions(store, layout, dataset)
    if not versions:
        raise NotFound(
            f"dataset {dataset!r} has no complete version under {layout.datasets_prefix(dataset).uri}"
        )
    return versions[-1]


def dataset_manifest(store: ObjectStore, layout: Layout, name: str, version: str) -> Manifest:
    loc = layout.dataset_manifest(name, version)
    try:
        raw = store.get_bytes(loc, max_bytes=MAX_MANIFEST_BYTES)
    except NotFound as exc:
        raise NotFound(f"dataset {name!r} version {version} does not exist ({loc.uri})") from exc
    manifest = Manifest.from_bytes(raw, loc.uri)
    if manifest.kind != "dataset" or manifest.name != name or manifest.version != version:
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
    downloads: dict[str, Source] = {}  # local name -> where it comes from
    used: list[str] = []
    refs = [DatasetRef.parse(text) for text in datasets]
    versions = [(ref.name, v) for ref in refs for v in resolve(store, layout, ref)]
    for dataset, version in dict.fromkeys(versions):
        manifest = dataset_manifest(store, layout, dataset, version)
        used.append(f"{manifest.name}@{manifest.version}")
        prefix = layout.dataset_prefix(manifest.name, manifest.version)
        for name, entry in manifest.files.items():
            parts = name.split("/")
            if len(parts) != 3 or parts[0] != IMAGES_DIR or parts[1] not in wanted:
                continue
            ext = check_extension(name.rsplit(".", 1)[-1])
            local = f"{IMAGES_DIR}/{parts[1]}/{entry.sha256}.{ext}"
            if entry.shard is None or entry.offset is None:
                downloads[local] = Source(Location(prefix.bucket, prefix.key + name), entry.sha256)
            else:
                shard = layout.dataset_file(manifest.name, manifest.version, entry.shard)
                downloads[local] = Source(shard, entry.sha256, entry.offset, entry.size)
    hard = _hard_examples(store, layout, edge, wanted) if hard_examples else {}
    downloads.update(hard)

    def fetch(item: tuple[str, Source]) -> None:
        local, src = item
        if src.offset is not None:
            store.download_range(src.loc, src.offset, src.size, out / local, src.sha256)
        else:
            store.download(src.loc, out / local, expected_sha256=src.sha256 or None)

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


def _hard_examples(store: ObjectStore, layout: Layout, edge: str, wanted: set[str]) -> dict[str, Source]:
    """Labelled hard examples of the edge for SKUs it still sells (``hard-examples/<SKU>/<id>``)."""
    prefix = layout.hard_examples_prefix(edge)
    found: dict[str, Source] = {}
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
        found[f"{IMAGES_DIR}/{parts[0]}/hard-{key_digest}.{ext}"] = Source(obj.location, "")
    return found
