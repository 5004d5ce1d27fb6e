"""The one image preprocessing function, used by training and by serving.

Training (the ``prepare`` step) and the edge predictor both call :func:`preprocess` on
the encoded image bytes, so a model never sees pixels prepared differently from the
ones it was trained on.  It is also the serving hot path, so it is built for speed:
JPEGs are decoded at reduced DCT scale (libjpeg's draft mode), the centre square is
cropped, then resized once with a box-filtered bilinear reduction.  Entropy decoding
of the whole file cannot be skipped and is most of the cost; the scale chosen is the
smallest whose side is at least 7/8 of the model input's (:data:`MIN_DECODE_FRACTION`).

Every decode is bounded: the declared size is checked before pixels are decoded
(decompression bombs), truncated or non-image bytes raise :class:`InvalidImage`.
"""

from __future__ import annotations

import io
import math
import re
import struct
import warnings
import zlib

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from foundation.errors import InvalidImage

ALLOWED_FORMATS = ("JPEG", "PNG")
MIN_SIDE = 32
DEFAULT_MAX_PIXELS = 40_000_000

Pixels = npt.NDArray[np.float32]

# At 1/8 scale libjpeg returns each 8×8 block's mean (a box-filtered reduction, free of
# aliasing) and skips the inverse DCT.  A 640×480 photo's 480 lines give 60, which are
# upsized by 1/15 to a 64² input; allowing up to 1/8 below the input side buys that
# saving for the default input (measured by bench/preprocessing.py).
MIN_DECODE_FRACTION = 7 / 8


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Identify and bound-check an image without decoding its pixels yet."""
    if not data:
        raise InvalidImage("empty image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"not a JPEG or PNG image: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"unreadable image: {exc}") from exc
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidImage(f"image declares {width}x{height} pixels, more than the {max_pixels}-pixel limit")
    if min(width, height) < MIN_SIDE:
        raise InvalidImage(f"image {width}x{height} is smaller than {MIN_SIDE} pixels on a side")
    return image


def check_decodes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode every byte of an image once, so that a cut or corrupt file is refused.

    A truncated upload (a dropped connection, a full disk) still has a valid header; only
    decoding the whole entropy-coded stream finds it.  JPEGs decode at 1/8 scale, which
    reads all of the stream but skips most of the inverse DCT, so the check costs a
    fraction of a full decode (bench/transfer.py measures it against the header check).
    """
    image = open_image(data, max_pixels)
    try:
        if image.format == "JPEG":
            image.draft(image.mode, (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
        image.load()
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"truncated or corrupt image: {exc}") from exc
    return image


def check_complete(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Refuse a cut or damaged file by its structure alone, without decoding pixels.

    The core's receiver runs this on every image at transfer speed; a full decode there
    cost most of the transfer's CPU (bench/transfer.py).  A JPEG's segments and scans must
    lead, marker by marker, to its end-of-image marker (byte stuffing keeps markers out
    of scan data, so a cut file has none); a PNG's chunks must all be present with
    matching CRCs up to IEND.  The gateway runs it too, so the core never refuses what a
    store accepted.  Damage that leaves the structure whole is left to ``prepare``, which
    decodes every image anyway and drops it, by name, in its report.
    """
    image = open_image(data, max_pixels)
    if image.format in ("JPEG", "MPO"):  # a multi-picture JPEG is a JPEG to walk
        _check_jpeg(data)
    elif image.format == "PNG":
        _check_png(data)
    else:
        raise InvalidImage(f"a {image.format} image: only JPEG and PNG are accepted")
    return image


_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
"""A marker inside or after a scan: not a stuffed 0xFF, a restart marker or a fill byte."""
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _check_jpeg(data: bytes) -> None:
    """From SOI, segment by segment (a segment's length skips its payload) to EOI.  Up to the
    first scan the segments must follow each other; from there, markers are found past the
    scans' data (progressive files have several scans, with tables between them)."""
    pos, scanning = 2, False  # after SOI
    while True:
        found = _MARKER.search(data, pos) if scanning else _MARKER.match(data, _after_fill(data, pos))
        if found is None:
            raise InvalidImage("truncated or corrupt image: the JPEG does not reach its end-of-image marker")
        marker, at = data[found.start() + 1], found.start()
        if marker == 0xD9:
            return
        if marker in _STANDALONE:
            pos = at + 2
            continue
        if at + 4 > len(data):
            raise InvalidImage("truncated or corrupt image: the JPEG ends inside a segment")
        length = struct.unpack_from(">H", data, at + 2)[0]
        if length < 2 or at + 2 + length > len(data):
            raise InvalidImage("truncated or corrupt image: a JPEG segment runs past the end")
        pos, scanning = at + 2 + length, scanning or marker == 0xDA


def _after_fill(data: bytes, pos: int) -> int:
    """Past 0xFF fill bytes, up to the 0xFF that starts the next marker."""
    while data[pos + 1 : pos + 2] == b"\xff":
        pos += 1
    return pos


def _check_png(data: bytes) -> None:
    pos = 8  # after the signature
    while True:
        if pos + 12 > len(data):
            raise InvalidImage("truncated or corrupt image: the PNG ends before IEND")
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length
        if end + 4 > len(data):
            raise InvalidImage("truncated or corrupt image: a PNG chunk runs past the end")
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(memoryview(data)[pos + 4 : end]) != crc:
            raise InvalidImage("truncated or corrupt image: a PNG chunk fails its CRC")
        if kind == b"IEND":
            return
        pos = end + 4


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None) -> Image.Image:
    """Decode to RGB; with ``min_side`` JPEGs decode at the smallest DCT scale ≥ it."""
    image = open_image(data, max_pixels)
    try:
        if min_side is not None and image.format == "JPEG":
            side = min(image.size)
            scale = 1
            while scale < 8 and side // (scale * 2) >= min_side:
                scale *= 2
            if scale > 1:
                image.draft("RGB", (image.size[0] // scale, image.size[1] // scale))
        image.load()
        # Most photos decode to RGB already; converting those anyway would copy them.
        rgb = image if image.mode == "RGB" else image.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"truncated or corrupt image: {exc}") from exc
    return rgb


def to_model_input(image: Image.Image, size: int) -> Pixels:
    """Centre square crop, resize to ``size``², scale to float32 in [0, 1]."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    box = (left, top, left + side, top + side)
    resized = image.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
    return np.asarray(resized, dtype=np.float32) * np.float32(1.0 / 255.0)


def preprocess(data: bytes, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> Pixels:
    """Encoded JPEG/PNG bytes → ``(size, size, 3)`` float32 model input.

    The function training and serving share: same bytes, same tensor.
    """
    return to_model_input(decode(data, max_pixels, min_side=math.ceil(size * MIN_DECODE_FRACTION)), size)
