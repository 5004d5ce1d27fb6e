"""The labelled photo folder: ``<root>/<edge>/<SKU>/*.jpg`` plus ``<root>/<edge>/catalogue.json``.

Generated demo catalogues and imported real photos both end up in this layout, which
is what gets uploaded as a dataset version.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from foundation.catalogue import Catalogue, Product
from foundation.errors import InvalidInput, NotFound
from foundation.layout import CATALOGUE_FILE, check_extension, check_name, check_sku

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})


@dataclass(frozen=True)
class LabelledFolder:
    """One edge's photos on disk, by SKU, with its catalogue."""

    root: Path
    catalogue: Catalogue

    @classmethod
    def open(cls, root: Path) -> LabelledFolder:
        path = root / CATALOGUE_FILE
        if not path.is_file():
            raise NotFound(f"{root} has no {CATALOGUE_FILE}: not a labelled photo folder")
        return cls(root, Catalogue.from_bytes(path.read_bytes()))

    def photos(self) -> dict[str, list[Path]]:
        """Photo files per SKU of the catalogue (sorted, so uploads are reproducible)."""
        found: dict[str, list[Path]] = {}
        for sku in self.catalogue.skus:
            folder = self.root / sku
            found[sku] = sorted(p for p in folder.glob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
        return found


def write_catalogue(root: Path, catalogue: Catalogue) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / CATALOGUE_FILE
    path.write_bytes(catalogue.to_bytes())
    return path


def sku_for_label(label: str) -> str:
    """A folder name turned into a valid SKU: ``coffee beans`` → ``COFFEE-BEANS``."""
    sku = re.sub(r"[^A-Z0-9]+", "-", label.upper()).strip("-")[:32].strip("-")
    if len(sku) < 3:
        sku = (sku + "-XX")[:3] if sku else "UNK"
    return check_sku(sku)


def import_photos(
    source: Path, edge: str, out: Path, progress: Callable[[int, int], None] | None = None
) -> Catalogue:
    """Copy real photos from ``<source>/<label>/*.jpg`` into ``<out>/<edge>/<SKU>/``.

    Each label folder becomes one product named after the folder (price 0 until a
    real catalogue replaces it); two labels mapping to the same SKU are refused.
    """
    check_name(edge, "edge id")
    if not source.is_dir():
        raise NotFound(f"photo folder {source} does not exist")
    labels = sorted(p for p in source.iterdir() if p.is_dir())
    if not labels:
        raise InvalidInput(f"{source} has no label folders (<label>/*.jpg)")
    by_sku: dict[str, Path] = {}
    for folder in labels:
        sku = sku_for_label(folder.name)
        if sku in by_sku:
            raise InvalidInput(f"labels {by_sku[sku].name!r} and {folder.name!r} both become SKU {sku}")
        by_sku[sku] = folder
    dest = out / edge
    files = [
        (sku, path)
        for sku, folder in by_sku.items()
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix.lower() in PHOTO_SUFFIXES
    ]
    for done, (sku, path) in enumerate(files, 1):
        target = dest / sku / f"{path.stem}.{check_extension(path.suffix)}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        if progress:
            progress(done, len(files))
    catalogue = Catalogue(
        edge=edge,
        products=[
            Product(sku=sku, name=folder.name[:120], price=Decimal("0")) for sku, folder in by_sku.items()
        ],
    )
    write_catalogue(dest, catalogue)
    return catalogue
