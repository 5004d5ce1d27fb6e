"""ingest: snapshot the dataset versions an edge's model trains on, from S3 to a local folder.

The snapshot holds the images whose SKU the edge's catalogue lists, from every requested
dataset version (labelled hard examples arrive the same way: they ship inside the
edge's sets), the catalogue itself, and a manifest naming the exact dataset versions
used, so a run can be reproduced and audited.  Every image is checked against its
manifest's sha256 on the way down; a set's images are read by range out of its shard.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from foundation.assortment import read_catalogue, retired_skus
from foundation.catalogue import Catalogue
from foundation.errors import InvalidInput, NotFound
from foundation.layout import (
    CATALOGUE_FILE,
    MANIFEST,
    SHARDS_BESIDE_VERSIONS,
    Layout,
    Location,
    check_extension,
    check_name,
    edge_model_name,
    parse_version,
)
from foundation.manifest import Manifest, entries_for_dir
from foundation.registry import (
    StoredVersion,
    complete_versions,
    fetch_verified,
    newest_version,
    read_pointer,
    read_version,
)
from foundation.storage.objects import ObjectReader

IMAGES_DIR = "images"


@dataclass(frozen=True)
class Source:
    """Where a snapshot image comes from: its own object, or a slice of a dataset's tar shard.

    Sets shipped by edges are stored as one shard per version (``offset`` locates the
    image in it); uploaded folders keep one object per image.  Both are verified against
    the manifest's sha256 and size.
    """

    loc: Location
    sha256: str
    size: int
    offset: int | None = None


@dataclass(frozen=True)
class DatasetRef:
    """``name`` (newest complete version), ``name@v000003`` (that version), ``name@..v000003``
    (every version up to it) or ``name@..`` (every version there is).

    The history form is how an edge's dataset is trained on: each set a store ships is a
    new version holding one product's photos, so a model needs every version up to the
    newest, not only the newest.  Bounding it by a version keeps a run reproducible; the
    open form is for people training by hand.
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
        if version:
            parse_version(version)
        return cls(name, version or None, history)


def resolve(reader: ObjectReader, layout: Layout, ref: DatasetRef) -> list[str]:
    """The exact versions a reference means, oldest first."""
    if ref.version is not None and not ref.history:
        return [ref.version]
    complete = complete_versions(reader, layout.datasets_prefix(ref.name))
    if ref.version is None:
        if not complete:
            where = layout.datasets_prefix(ref.name).uri
            raise NotFound(f"dataset {ref.name!r} has no complete version under {where}")
        return complete if ref.history else complete[-1:]
    last = parse_version(ref.version)
    chosen = [v for v in complete if parse_version(v) <= last]
    if not chosen or chosen[-1] != ref.version:
        raise NotFound(
            f"dataset {ref.name!r} version {ref.version} does not exist (history {ref.name}@..{ref.version})"
        )
    return chosen


def dataset_manifest(reader: ObjectReader, layout: Layout, name: str, version: str) -> Manifest:
    try:
        return read_version(reader, layout.dataset_prefix(name, version), kind="dataset").manifest
    except NotFound as exc:
        raise NotFound(f"dataset {name!r} version {version} does not exist ({exc})") from exc


def core_catalogue(reader: ObjectReader, layout: Layout, edge: str) -> Catalogue:
    home = layout.core_catalogue_home(edge)
    catalogue = read_catalogue(reader, home)
    if catalogue is None:
        raise NotFound(f"edge {edge!r} has no catalogue at {home.catalogue.uri} (its sets bring it)")
    return catalogue


def ingest(
    reader: ObjectReader, layout: Layout, edge: str, datasets: list[str], out: Path, workers: int = 8
) -> Manifest:
    """Download the edge's images into ``out/images/<SKU>/<sha256>.<ext>``; return the snapshot manifest."""
    if not datasets:
        raise InvalidInput("no dataset requested")
    catalogue = core_catalogue(reader, layout, edge)
    refs = [DatasetRef.parse(text) for text in datasets]
    versions = dict.fromkeys((ref.name, v) for ref in refs for v in resolve(reader, layout, ref))
    sources, blurred = _sources(reader, layout, versions, set(catalogue.skus))
    _download(reader, sources, out, workers)
    used = [f"{name}@{version}" for name, version in versions]
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
        metadata={
            "edge": edge,
            "datasets": used,
            "per_label": per_label,
            "retired": retired_skus(
                reader, layout.core_catalogue_home(edge)
            ),  # the only products the model may forget
            "blur_faces": sorted(blurred),  # images of datasets whose photos may show people
        },
    )
    (out / MANIFEST).write_bytes(snapshot.to_bytes())
    return snapshot


def _sources(
    reader: ObjectReader, layout: Layout, versions: dict[tuple[str, str], None], wanted: set[str]
) -> tuple[dict[str, Source], set[str]]:
    """Local name -> where it comes from, for every image of a wanted SKU in these versions; and
    the local names of images whose dataset asks for faces to be blurred."""
    sources: dict[str, Source] = {}
    blurred: set[str] = set()
    for dataset, version in versions:
        manifest = dataset_manifest(reader, layout, dataset, version)
        blur = bool(manifest.metadata.get("blur_faces"))
        for name, entry in manifest.files.items():
            parts = name.split("/")
            if len(parts) != 3 or parts[0] != IMAGES_DIR or parts[1] not in wanted:
                continue
            local = f"{IMAGES_DIR}/{parts[1]}/{entry.sha256}.{check_extension(name.rsplit('.', 1)[-1])}"
            if entry.shard is None or entry.offset is None:
                src = Source(layout.dataset_file(dataset, version, name), entry.sha256, entry.size)
            else:
                src = Source(_shard(layout, manifest, entry.shard), entry.sha256, entry.size, entry.offset)
            sources[local] = src
            if blur:
                blurred.add(local)
    return sources, blurred


def _shard(layout: Layout, manifest: Manifest, shard: str) -> Location:
    """Where a shard lies: beside the dataset's versions, or (sets shipped earlier) inside its version."""
    if manifest.metadata.get("shard_root") == SHARDS_BESIDE_VERSIONS:
        return layout.dataset_shard(manifest.name, shard)
    return layout.dataset_file(manifest.name, manifest.version, shard)


def _download(reader: ObjectReader, sources: dict[str, Source], out: Path, workers: int) -> None:
    def fetch(item: tuple[str, Source]) -> None:
        local, src = item
        if src.offset is not None:
            reader.download_range(src.loc, src.offset, src.size, out / local, src.sha256)
        else:
            reader.download(src.loc, out / local, expected_sha256=src.sha256)

    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fetch, sorted(sources.items())))


def snapshot_production(
    reader: ObjectReader, layout: Layout, edge: str, out: Path, model: str | None = None
) -> Manifest | None:
    """The version of the edge's ``model`` (its product model unless named) it serves now (its serving
    pointer), else the newest registered one, fetched verified into ``out`` (left empty when there is
    none): what the gate compares with."""
    out.mkdir(parents=True, exist_ok=True)
    model = model or edge_model_name(edge)
    pointer = read_pointer(reader, layout, edge, model)
    if pointer is not None:
        current: StoredVersion | None = read_version(reader, layout.model_prefix(model, pointer.version))
    else:
        current = newest_version(reader, layout.models_prefix(model))
    if current is None:
        return None
    fetch_verified(reader, current, out)
    return current.manifest
