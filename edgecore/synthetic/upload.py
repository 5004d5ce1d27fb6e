"""Upload a labelled photo folder as the next immutable dataset version, and add its products.

The version number is claimed first with a conditional write (``put_if_absent``), so
two uploads never share a version; images go up next and the manifest last, so a
reader never sees half a version.  The folder's products are added to the edge's
catalogue (``foundation.assortment``): an upload holding only some products adds those
and leaves the others the edge sells in place, so its next model still knows them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgecore.synthetic.folder import LabelledFolder
from foundation.assortment import add_products
from foundation.errors import InvalidInput
from foundation.layout import Layout, check_extension
from foundation.manifest import FileEntry, Manifest
from foundation.registry import claim_next_version
from foundation.storage.store import ObjectStore


def upload_folder(
    store: ObjectStore,
    layout: Layout,
    source: Path,
    dataset: str,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 8,
    blur_faces: bool = False,
) -> Manifest:
    """Upload ``<source>/<SKU>/*`` as a new version of ``dataset``; return its manifest."""
    folder = LabelledFolder.open(source)
    edge = folder.catalogue.edge
    photos = [(sku, path) for sku, paths in folder.photos().items() for path in paths]
    if not photos:
        raise InvalidInput(f"{source} holds no photos for the SKUs of its catalogue")
    store.ensure_bucket(layout.training_bucket)
    store.ensure_bucket(layout.edge_bucket(edge))
    version = claim_next_version(store, layout.dataset_versions(dataset), owner=f"upload:{source.name}")
    prefix = layout.dataset_prefix(dataset, version)
    files: dict[str, FileEntry] = {}
    done = 0

    def put(item: tuple[str, Path]) -> tuple[str, FileEntry]:
        sku, path = item
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        loc = layout.dataset_image(dataset, version, sku, sha, check_extension(path.suffix))
        stored = store.put_bytes(loc, data, "image/jpeg" if loc.key.endswith(".jpg") else "image/png")
        return loc.key[len(prefix.key) :], FileEntry(sha256=stored.sha256, size=stored.size)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for name, entry in pool.map(put, photos):
            files[name] = entry
            done += 1
            if progress:
                progress(done, len(photos))
    manifest = Manifest(
        kind="dataset",
        name=dataset,
        version=version,
        files=files,
        labels=sorted({name.split("/")[1] for name in files}),
        metadata={"edge": edge, "source": str(source), "blur_faces": blur_faces},
    )
    add_products(
        store, layout.core_catalogue_home(edge), folder.catalogue.products, by=f"upload of {source.name}"
    )
    store.put_bytes(layout.dataset_manifest(dataset, version), manifest.to_bytes(), "application/json")
    return manifest
