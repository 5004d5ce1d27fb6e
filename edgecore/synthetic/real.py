"""Products whose packaging is a real photograph: the sample photos scikit-image and matplotlib ship.

Nothing can be downloaded here, so real photos come from installed packages: the
astronaut, the cat, the coffee cup, the rocket … each printed on a box face, then
photographed at the kiosk as the demo products are (pose, scale, lighting, clutter,
blur, JPEG).  The boxes' fronts carry the photos' real textures and colours, so models
meet natural-image statistics rather than flat synthetic artwork; the scenes around
them are generated.  Some products train, others are kept unseen, to measure how
often photos of products a model never saw are flagged as unsure.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from edgecore.synthetic.folder import write_catalogue
from edgecore.synthetic.packaging import SPRITE_H, SPRITE_W
from edgecore.synthetic.photos import photo_rng, render_art
from foundation.catalogue import Catalogue, Product

EDGE = "realshop"


@dataclass(frozen=True)
class RealProduct:
    sku: str
    package: str
    """The installed package that ships the photo, and its path inside it."""
    path: str
    name: str


SOURCES: tuple[RealProduct, ...] = (
    RealProduct("REAL-ASTRONAUT", "skimage", "data/astronaut.png", "Astronaut Poster"),
    RealProduct("REAL-CAT", "skimage", "data/chelsea.png", "Cat Calendar"),
    RealProduct("REAL-COFFEE", "skimage", "data/coffee.png", "Espresso Beans"),
    RealProduct("REAL-ROCKET", "skimage", "data/rocket.jpg", "Rocket Model Kit"),
    RealProduct("REAL-MOTORBIKE", "skimage", "data/motorcycle_left.png", "Motorbike Puzzle"),
    RealProduct("REAL-GALAXY", "skimage", "data/hubble_deep_field.jpg", "Galaxy Print"),
    RealProduct("REAL-RETINA", "skimage", "data/retina.jpg", "Eye Drops"),
    RealProduct("REAL-TISSUE", "skimage", "data/ihc.png", "Lab Stain Kit"),
    RealProduct("REAL-HOPPER", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "Biography Book"),
    RealProduct("REAL-BRICK", "skimage", "data/brick.png", "Brick Tiles"),
    RealProduct("REAL-CAMERA", "skimage", "data/camera.png", "Film Camera Manual"),
    RealProduct("REAL-COINS", "skimage", "data/coins.png", "Coin Album"),
    RealProduct("REAL-GRASS", "skimage", "data/grass.png", "Lawn Seed"),
    RealProduct("REAL-GRAVEL", "skimage", "data/gravel.png", "Aquarium Gravel"),
    RealProduct("REAL-MOON", "skimage", "data/moon.png", "Moon Lamp"),
    RealProduct("REAL-CELL", "skimage", "data/cell.png", "Microscope Slides"),
    RealProduct("REAL-PAGE", "skimage", "data/page.png", "Notebook"),
    RealProduct("REAL-CLOCK", "skimage", "data/clock_motion.png", "Wall Clock"),
    RealProduct("REAL-COLOR", "skimage", "data/color.png", "Colour Chart"),
    RealProduct("REAL-HORSE", "skimage", "data/horse.png", "Horse Figurine"),
)


WITH_FACES = frozenset({"REAL-ASTRONAUT", "REAL-HOPPER"})
"""Products whose photo shows a person's face (the privacy blur's true positives)."""


def catalogue(skus: list[str], edge: str = EDGE) -> Catalogue:
    by_sku = {p.sku: p for p in SOURCES}
    return Catalogue(
        edge=edge, products=[Product(sku=s, name=by_sku[s].name, price=Decimal("9.99")) for s in skus]
    )


@lru_cache(maxsize=32)
def sprite(sku: str) -> Image.Image:
    """The product's box: its photo, centre-cropped to the box face, with a printed border."""
    source = next(p for p in SOURCES if p.sku == sku)
    with resources.as_file(resources.files(source.package) / source.path) as path, Image.open(path) as raw:
        photo = raw.convert("RGB")
    side_ratio = SPRITE_W / SPRITE_H
    w, h = photo.size
    if w / h > side_ratio:
        crop_w = int(h * side_ratio)
        photo = photo.crop(((w - crop_w) // 2, 0, (w - crop_w) // 2 + crop_w, h))
    else:
        crop_h = int(w / side_ratio)
        photo = photo.crop((0, (h - crop_h) // 2, w, (h - crop_h) // 2 + crop_h))
    face = photo.resize((SPRITE_W, SPRITE_H), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(face)
    draw.rectangle((0, 0, SPRITE_W - 1, SPRITE_H - 1), outline=(240, 240, 235), width=6)
    shade = np.linspace(0.85, 1.1, SPRITE_W, dtype=np.float32)[None, :, None]
    pixels = np.clip(np.asarray(face, np.float32) * shade, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").convert("RGBA")


def generate(out: Path, skus: list[str], seed: int, images: int, edge: str = EDGE) -> Catalogue:
    """Write ``<out>/<edge>/<SKU>/<nnnn>.jpg`` kiosk photos of ``skus`` and the catalogue."""
    root = out / edge
    for sku in skus:
        folder = root / sku
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(images):
            (folder / f"{index:04d}.jpg").write_bytes(
                render_art(sprite(sku), photo_rng(seed, edge, sku, index))
            )
    result = catalogue(skus, edge)
    write_catalogue(root, result)
    return result
