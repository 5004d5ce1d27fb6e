"""The shared preprocessing: how a kiosk photo becomes the model's input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage.transform import resize

from foundation.errors import InvalidImage
from foundation.preprocessing import decode, preprocess, to_model_input

SIZE = 64


def photo(fmt: str, size: tuple[int, int] = (640, 480), seed: int = 0) -> bytes:
    """A photo-like image: smooth shapes plus sensor noise, so DCT scaling has detail to lose."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 90 * np.sin(xx / (17 + 9 * c)) * np.cos(yy / (23 + 5 * c)) for c in range(3)], -1)
    pixels = (base + rng.normal(0, 8, base.shape)).clip(0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format=fmt, **({"quality": 88} if fmt == "JPEG" else {}))
    return out.getvalue()


def full_resolution_reference(data: bytes) -> np.ndarray:
    """Full decode, centre square, scikit-image's anti-aliased resize: slow but faithful."""
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    h, w = rgb.shape[:2]
    side = min(h, w)
    crop = rgb[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]
    return np.asarray(resize(crop, (SIZE, SIZE), anti_aliasing=True), dtype=np.float32)  # type: ignore[no-untyped-call]


def test_a_kiosk_jpeg_is_decoded_at_one_eighth_scale_for_a_64_pixel_input() -> None:
    data = photo("JPEG")
    eighth = Image.open(io.BytesIO(data))
    eighth.draft("RGB", (80, 60))
    assert eighth.size == (80, 60)
    assert np.array_equal(preprocess(data, SIZE), to_model_input(eighth.convert("RGB"), SIZE))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_the_model_input_stays_close_to_a_full_resolution_anti_aliased_resize(fmt: str) -> None:
    data = photo(fmt, seed=3)
    difference = np.abs(preprocess(data, SIZE) - full_resolution_reference(data))
    assert float(difference.mean()) < 0.02


def test_decoding_picks_the_smallest_dct_scale_not_below_the_side_asked_for() -> None:
    data = photo("JPEG")
    assert [decode(data, min_side=side).size for side in (480, 200, 100, 60, 10)] == [
        (640, 480),
        (320, 240),
        (160, 120),
        (80, 60),
        (80, 60),
    ]


def test_the_same_bytes_always_give_the_same_tensor() -> None:
    data = photo("JPEG", seed=5)
    assert np.array_equal(preprocess(data, SIZE), preprocess(data, SIZE))


def test_an_image_under_the_minimum_side_is_rejected() -> None:
    with pytest.raises(InvalidImage, match="smaller than"):
        preprocess(photo("PNG", size=(40, 20)), SIZE)
