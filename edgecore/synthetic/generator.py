"""``catalogue generate``: the demo stores' photo folders, deterministic by seed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from edgecore.synthetic.folder import write_catalogue
from edgecore.synthetic.photos import photo_rng, render
from edgecore.synthetic.products import EDGES, demo_catalogue
from foundation.catalogue import Catalogue


def generate_store(
    out: Path,
    edge: str,
    seed: int,
    images_per_product: int,
    with_new_product: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Catalogue:
    """Write ``<out>/<edge>/<SKU>/<nnnn>.jpg`` and ``<out>/<edge>/catalogue.json``."""
    catalogue = demo_catalogue(edge, with_new_product)
    root = out / edge
    total = images_per_product * len(catalogue.products)
    done = 0
    for product in catalogue.products:
        folder = root / product.sku
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(images_per_product):
            data = render(product.sku, photo_rng(seed, edge, product.sku, index))
            (folder / f"{index:04d}.jpg").write_bytes(data)
            done += 1
            if progress:
                progress(done, total)
    write_catalogue(root, catalogue)
    return catalogue


def generate(
    out: Path,
    seed: int = 7,
    images_per_product: int = 80,
    edges: Iterable[str] = EDGES,
    with_new_product: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[Catalogue]:
    return [generate_store(out, edge, seed, images_per_product, with_new_product, progress) for edge in edges]
