"""Packaging artwork: each demo product drawn once as an RGBA sprite.

A design is a shape (box, bottle, can, jar, pouch, tube), two colours, a pattern and
the product name printed on a label panel.  It depends only on the product's position
in the demo universe, so the same SKU has the same packaging in every store and run.
"""

from __future__ import annotations

import colorsys
import textwrap
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edgecore.synthetic.products import PATTERNS, SHAPES, UNIVERSE, design_index, family_of

SPRITE_W, SPRITE_H = 200, 300
_GOLDEN = 0.618033988749895
FAMILY_HUE_STEP = 0.09
"""Hue apart of two variants of one family: near enough to confuse at a glance, under tinted light."""


@dataclass(frozen=True)
class Design:
    shape: str
    pattern: str
    primary: tuple[int, int, int]
    secondary: tuple[int, int, int]
    ink: tuple[int, int, int]
    name: str


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def design_for(sku: str) -> Design:
    """The packaging of ``sku``: its own, or its family's with the hue turned a little per variant."""
    head, place = family_of(sku)
    i = design_index(head)
    hue = (0.07 + i * _GOLDEN + FAMILY_HUE_STEP * place) % 1.0
    value = 0.85 if i % 2 == 0 else 0.6
    return Design(
        shape=SHAPES[i % len(SHAPES)],
        pattern=PATTERNS[(i * 5 + i // len(SHAPES)) % len(PATTERNS)],
        primary=_rgb(hue, 0.75, value),
        secondary=_rgb(hue + 0.45 + 0.1 * (i % 3), 0.6, 0.95 - value / 3),
        ink=(20, 20, 30) if value > 0.7 else (245, 245, 235),
        name=UNIVERSE[design_index(sku)].product.name,
    )


def _outline(shape: str) -> Image.Image:
    """The silhouette of a packaging shape as an L mask of the sprite size."""
    mask = Image.new("L", (SPRITE_W, SPRITE_H), 0)
    d = ImageDraw.Draw(mask)
    w, h = SPRITE_W, SPRITE_H
    if shape == "box":
        d.rectangle((10, 20, w - 10, h - 10), fill=255)
    elif shape == "bottle":
        d.rounded_rectangle((30, 110, w - 30, h - 5), radius=25, fill=255)
        d.polygon([(30, 140), (w // 2 - 22, 45), (w // 2 + 22, 45), (w - 30, 140)], fill=255)
        d.rectangle((w // 2 - 18, 5, w // 2 + 18, 60), fill=255)
    elif shape == "can":
        d.rectangle((35, 40, w - 35, h - 40), fill=255)
        d.ellipse((35, 20, w - 35, 60), fill=255)
        d.ellipse((35, h - 60, w - 35, h - 20), fill=255)
    elif shape == "jar":
        d.rounded_rectangle((15, 80, w - 15, h - 10), radius=40, fill=255)
        d.rectangle((35, 45, w - 35, 95), fill=255)
    elif shape == "pouch":
        top = [(20 + k * 16, 30 if k % 2 else 15) for k in range(11)]
        d.polygon([*top, (w - 5, h - 10), (5, h - 10)], fill=255)
    else:  # tube
        d.polygon([(50, 10), (w - 50, 10), (w - 30, h - 40), (30, h - 40)], fill=255)
        d.rectangle((w // 2 - 25, h - 45, w // 2 + 25, h - 5), fill=255)
    return mask


def _pattern(design: Design) -> np.ndarray:
    """The printed surface: primary colour with the pattern in the secondary colour."""
    yy, xx = np.mgrid[0:SPRITE_H, 0:SPRITE_W].astype(np.float32)
    kind = design.pattern
    if kind == "stripes":
        on = (yy // 18) % 2 == 0
    elif kind == "dots":
        on = ((xx % 34) - 17) ** 2 + ((yy % 34) - 17) ** 2 < 80
    elif kind == "checks":
        on = ((xx // 25) + (yy // 25)) % 2 == 0
    elif kind == "waves":
        on = np.sin(xx / 14.0 + 3 * np.sin(yy / 22.0)) > 0.3
    elif kind == "diagonal":
        on = ((xx + yy) // 20) % 2 == 0
    else:  # band
        on = np.abs(yy - SPRITE_H * 0.62) < SPRITE_H * 0.14
    surface = np.empty((SPRITE_H, SPRITE_W, 3), np.float32)
    surface[:] = design.primary
    surface[on] = design.secondary
    # A soft cylindrical shading makes round packagings read as 3-D.
    shade = 0.8 + 0.3 * np.sin(np.pi * (xx + 0.5) / SPRITE_W) if design.shape != "box" else 1.0
    return np.clip(surface * np.asarray(shade, np.float32)[..., None], 0, 255).astype(np.uint8)


@lru_cache(maxsize=64)
def sprite(sku: str) -> Image.Image:
    """The product's packaging, RGBA, transparent outside its silhouette (cached)."""
    design = design_for(sku)
    surface = Image.fromarray(_pattern(design), "RGB")
    draw = ImageDraw.Draw(surface)
    panel = (28, 130, SPRITE_W - 28, 210)
    draw.rounded_rectangle(panel, radius=10, fill=(250, 248, 240) if design.ink[0] < 128 else (30, 30, 40))
    font = ImageFont.load_default(size=17)
    lines = textwrap.wrap(design.name, width=14)[:3]
    for k, line in enumerate(lines):
        draw.text(
            (SPRITE_W // 2, 150 + 20 * k - 10 * (len(lines) - 1)),
            line,
            font=font,
            fill=design.ink if design.ink[0] < 128 else (245, 245, 235),
            anchor="mm",
        )
    # A brand roundel with the first letter, in the secondary colour.
    draw.ellipse(
        (SPRITE_W // 2 - 24, 62, SPRITE_W // 2 + 24, 110), fill=design.secondary, outline=design.ink, width=3
    )
    draw.text(
        (SPRITE_W // 2, 86),
        design.name[0],
        font=ImageFont.load_default(size=30),
        fill=design.ink,
        anchor="mm",
    )
    rgba = surface.convert("RGBA")
    rgba.putalpha(_outline(design.shape))
    return rgba
