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

from foundation.catalogue import Catalogue
from foundation.errors import InvalidInput, NotFound
from foundation.layout import (
    CATALOGUE_FILE,
    MANIFEST,
    Layout,
    Location,
    check_extension,
    check_name,
    edge_model_name,
    parse_version,
)
from foundation.manifest import Manifest, entries_for_dir
from foundation.registry import complete_versions, fetch_verified, newest_version, read_version
from foundation.storage.objects import ObjectReader

IMAGES_DIR = "images"
MAX_CATALOGUE_BYTES = 1_048_576


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


def resolve(reader: ObjectReader, layout: Layout, ref: DatasetRef) -> list[str]:
    """The exact versions a reference means, oldest first."""
    if ref.version is not None and not ref.history:
        return [ref.version]
    complete = complete_versions(reader, layout.datasets_prefix(ref.name))
    if ref.version is None:
        if not complete:
            where = layout.datasets_prefix(ref.name).uri
            raise NotFound(f"dataset {ref.name!r} has no complete version under {where}")
        return complete[-1:]
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


def edge_catalogue(reader: ObjectReader, layout: Layout, edge: str) -> Catalogue:
    loc = layout.edge_catalogue(edge)
    try:
        catalogue = Catalogue.from_bytes(reader.get_bytes(loc, max_bytes=MAX_CATALOGUE_BYTES))
    except NotFound as exc:
        raise NotFound(f"edge {edge!r} has no catalogue at {loc.uri}") from exc
    if catalogue.edge != edge:
        raise InvalidInput(f"{loc.uri} is the catalogue of edge {catalogue.edge!r}, not {edge!r}")
    return catalogue


def ingest(
    reader: ObjectReader, layout: Layout, edge: str, datasets: list[str], out: Path, workers: int = 8
) -> Manifest:
    """Download the edge's images into ``out/images/<SKU>/<sha256>.<ext>``; return the snapshot manifest."""
    if not datasets:
        raise InvalidInput("no dataset requested")
    catalogue = edge_catalogue(reader, layout, edge)
    refs = [DatasetRef.parse(text) for text in datasets]
    versions = dict.fromkeys((ref.name, v) for ref in refs for v in resolve(reader, layout, ref))
    sources = _sources(reader, layout, versions, set(catalogue.skus))
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
        metadata={"edge": edge, "datasets": used, "per_label": per_label},
    )
    (out / MANIFEST).write_bytes(snapshot.to_bytes())
    return snapshot


def _sources(
    reader: ObjectReader, layout: Layout, versions: dict[tuple[str, str], None], wanted: set[str]
) -> dict[str, Source]:
    """Local name -> where it comes from, for every image of a wanted SKU in these versions."""
    sources: dict[str, Source] = {}
    for dataset, version in versions:
        manifest = dataset_manifest(reader, layout, dataset, version)
        for name, entry in manifest.files.items():
            parts = name.split("/")
            if len(parts) != 3 or parts[0] != IMAGES_DIR or parts[1] not in wanted:
                continue
            local = f"{IMAGES_DIR}/{parts[1]}/{entry.sha256}.{check_extension(name.rsplit('.', 1)[-1])}"
            if entry.shard is None or entry.offset is None:
                src = Source(layout.dataset_file(dataset, version, name), entry.sha256, entry.size)
            else:
                shard = layout.dataset_file(dataset, version, entry.shard)
                src = Source(shard, entry.sha256, entry.size, entry.offset)
            sources[local] = src
    return sources


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


def snapshot_production(reader: ObjectReader, layout: Layout, edge: str, out: Path) -> Manifest | None:
    """The edge model's newest registered version, fetched verified into ``out`` (left empty when none)."""
    out.mkdir(parents=True, exist_ok=True)
    current = newest_version(reader, layout.models_prefix(edge_model_name(edge)))
    if current is None:
        return None
    fetch_verified(reader, current, out)
    return current.manifest
