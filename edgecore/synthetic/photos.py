"""Kiosk photos of demo products: random pose, scale, lighting, clutter, occlusion, blur, JPEG artefacts.

A third of the photos have part of the product hidden, as at a real kiosk: by the hand
holding it or by a price tag in front of it.

Each photo has its own random generator derived from (seed, edge, SKU, index) with
``numpy.random.SeedSequence``, so a catalogue is reproducible image by image whatever
order or subset is generated.
"""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from edgecore.synthetic.packaging import sprite

WIDTH, HEIGHT = 640, 480
OCCLUDED_SHARE = 0.33
MAX_ROTATION_DEG = 35.0
_SKIN_TONES = ((241, 194, 167), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 33))


def photo_rng(seed: int, edge: str, sku: str, index: int) -> np.random.Generator:
    key = hashlib.sha256(f"{edge}/{sku}/{index}".encode()).digest()
    return np.random.default_rng(np.random.SeedSequence([seed, *np.frombuffer(key[:16], np.uint32)]))


def _background(rng: np.random.Generator) -> Image.Image:
    """A shelf-like scene: a two-colour gradient, a shelf edge and random clutter."""
    top, bottom = rng.uniform(40, 230, 3), rng.uniform(20, 200, 3)
    t = np.linspace(0.0, 1.0, HEIGHT, dtype=np.float32)[:, None, None]
    base = (top * (1 - t) + bottom * t).astype(np.float32)
    pixels = np.broadcast_to(base, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    shelf = int(rng.uniform(0.6, 0.9) * HEIGHT)
    draw.rectangle((0, shelf, WIDTH, shelf + int(rng.integers(8, 25))), fill=tuple(rng.integers(60, 200, 3)))
    for _ in range(int(rng.integers(4, 14))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = int(rng.integers(-50, WIDTH)), int(rng.integers(-50, HEIGHT))
        x1, y1 = x0 + int(rng.integers(20, 200)), y0 + int(rng.integers(20, 200))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(2, 12)))
    return image


def _occlude(scene: Image.Image, box: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    """Hide up to about a quarter of the product: a hand over one side, or a price tag in front."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    draw = ImageDraw.Draw(scene)
    if rng.random() < 0.6:  # a hand from the left or right, fingers across the product
        skin = _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))]
        side = left if rng.random() < 0.5 else right
        reach = w * rng.uniform(0.15, 0.35)
        y0 = top + h * rng.uniform(0.2, 0.6)
        palm = (side - reach, y0, side + reach, y0 + h * 0.3)
        draw.ellipse(palm, fill=skin)
        for k in range(4):
            fy = y0 + k * h * 0.07
            draw.rounded_rectangle((side - reach * 1.3, fy, side + reach * 1.3, fy + h * 0.06), 8, fill=skin)
    else:  # a price tag, white or yellow, with a printed price
        tw, th = w * rng.uniform(0.4, 0.8), h * rng.uniform(0.1, 0.2)
        x0, y0 = left + rng.uniform(0, w - tw), top + rng.uniform(0.3, 0.9) * (h - th)
        paper = (250, 250, 245) if rng.random() < 0.5 else (250, 220, 60)
        draw.rectangle((x0, y0, x0 + tw, y0 + th), fill=paper, outline=(40, 40, 40))
        draw.text((x0 + 6, y0 + 4), f"{rng.uniform(0.5, 50):.2f}", fill=(200, 20, 20))


@lru_cache(maxsize=1)
def _noise_tile() -> np.ndarray:
    """Unit sensor noise, made once; photos take a random window of it (fast, deterministic)."""
    rng = np.random.default_rng(20_240_601)
    return np.round(rng.standard_normal((HEIGHT + 64, WIDTH + 64)) * 8).astype(np.int16)[..., None]


def _lighting(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure, colour cast, a directional light falloff and sensor noise."""
    gain = rng.uniform(0.6, 1.3) * rng.uniform(0.9, 1.1, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:HEIGHT:16, 0:WIDTH:16].astype(np.float32)
    ramp = (np.cos(angle) * (xx / WIDTH - 0.5) + np.sin(angle) * (yy / HEIGHT - 0.5)) * rng.uniform(0, 0.6)
    coarse = np.clip((1.0 + ramp)[..., None] * gain * 100.0, 0, 255).astype(np.uint8)
    light = np.asarray(Image.fromarray(coarse, "RGB").resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR))
    out = ((pixels.astype(np.uint16) * light) // 100).astype(np.int16)
    sigma = int(rng.integers(0, 9))
    if sigma > 1:
        dy, dx = (int(v) for v in rng.integers(0, 64, 2))
        out += (_noise_tile()[dy : dy + HEIGHT, dx : dx + WIDTH] * np.int16(sigma)) >> 3
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def render(sku: str, rng: np.random.Generator) -> bytes:
    """One 640×480 JPEG photo of the product ``sku``."""
    return render_art(sprite(sku), rng)


def render_art(art: Image.Image, rng: np.random.Generator) -> bytes:
    """One 640×480 JPEG photo of a product whose packaging is ``art`` (RGBA)."""
    scene = _background(rng)
    height = rng.uniform(0.5, 0.85) * HEIGHT
    scale = height / art.height
    art = art.resize(
        (max(8, int(art.width * scale)), max(8, int(art.height * scale))), Image.Resampling.BILINEAR
    )
    angle = float(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    art = art.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    cx = WIDTH / 2 + rng.uniform(-60, 60)
    cy = HEIGHT / 2 + rng.uniform(-40, 40)
    left, top = int(cx - art.width / 2), int(cy - art.height / 2)
    scene.paste(art, (left, top), art)
    if rng.random() < OCCLUDED_SHARE:
        _occlude(scene, (left, top, left + art.width, top + art.height), rng)
    pixels = _lighting(np.asarray(scene), rng)
    image = Image.fromarray(pixels, "RGB")
    radius = rng.uniform(0, 2.0)
    if radius > 0.4:
        image = image.filter(ImageFilter.BoxBlur(radius))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=int(rng.integers(35, 93)))
    return buf.getvalue()
