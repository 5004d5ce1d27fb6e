"""Privacy clean-up of a photo before it is kept: metadata stripped, faces blurred.

Metadata (EXIF with GPS and device serials, comments, XMP) is removed without
re-encoding: JPEG segments are dropped from the byte stream, so pixels stay exactly
as the camera wrote them and training sees what serving will see.  Faces are found
with scikit-image's bundled LBP frontal-face cascade on a small copy, kept where they are
skin-coloured, and blurred in the full image, which is then re-encoded.  Blurring is a
dataset's choice (photos that may show shoppers), never the default: serving never
blurs, so a blurred training photo is pixels the model will not meet at the kiosk.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from foundation.errors import InvalidImage

if TYPE_CHECKING:
    from skimage.feature import Cascade

# JPEG markers kept: APP0 (JFIF) and APP14 (Adobe: says how colours are encoded).
_KEEP_APP = {0xE0, 0xEE}
_COM = 0xFE
_SOS = 0xDA
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def strip_jpeg_metadata(data: bytes) -> bytes:
    """Drop APP1..APP15 (except Adobe) and COM segments before the scan; lossless."""
    if data[:2] != b"\xff\xd8":
        raise InvalidImage("not a JPEG stream")
    out = bytearray(b"\xff\xd8")
    i = 2
    while i + 1 < len(data):
        if data[i] != 0xFF:
            raise InvalidImage(f"corrupt JPEG marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == _SOS:
            out += data[i:]
            return bytes(out)
        if marker in _STANDALONE:
            out += data[i : i + 2]
            i += 2
            continue
        if i + 4 > len(data):
            break
        end = i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        is_metadata = marker == _COM or (0xE1 <= marker <= 0xEF and marker not in _KEEP_APP)
        if not is_metadata:
            out += data[i:end]
        i = end
    raise InvalidImage("truncated JPEG: no image data")


def strip_png_metadata(image: Image.Image) -> bytes:
    """PNG re-encoding is lossless; saving without ``pnginfo`` drops text and EXIF chunks."""
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


@lru_cache(maxsize=1)
def _cascade() -> Cascade:
    # skimage.feature pulls in scipy (a second or more of imports): only the prepare step
    # detects faces, train/evaluate/export import this module just to read prepared data.
    from skimage import data as skdata
    from skimage.feature import Cascade

    return Cascade(skdata.lbp_frontal_face_cascade_filename())  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Face:
    left: int
    top: int
    width: int
    height: int

    def scaled(self, factor: float) -> Face:
        return Face(*(round(v * factor) for v in (self.left, self.top, self.width, self.height)))


MIN_SKIN_SHARE = 0.5
"""Share of a candidate face's centre that must be skin-coloured for it to count as a face."""


def find_faces(image: Image.Image, side: int = 200) -> list[Face]:
    """Faces at least ~``24/side`` of the longest image side, in full-image pixels.

    The LBP cascade alone fires on packaging (text, roundels, patterned boxes), so a
    candidate counts only where its centre is largely skin-coloured; a photo with no
    colour to judge by (greyscale) keeps the cascade's answer.
    """
    scale = side / max(image.size)
    size = (max(24, round(image.width * scale)), max(24, round(image.height * scale)))
    small = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    grey = np.asarray(small.convert("L"), dtype=np.float64) / 255.0
    found = _cascade().detect_multi_scale(
        grey, scale_factor=1.2, step_ratio=1, min_size=(24, 24), max_size=grey.shape, min_neighbor_number=4
    )
    skin = _skin_mask(small)
    faces = [Face(f["c"], f["r"], f["width"], f["height"]) for f in found]
    return [
        face.scaled(1 / scale) for face in faces if skin is None or _skin_share(skin, face) >= MIN_SKIN_SHARE
    ]


def _skin_mask(image: Image.Image) -> npt.NDArray[np.bool_] | None:
    """Skin-coloured pixels (a fixed Cb/Cr box, which holds across skin tones); None for a grey photo."""
    ycbcr = np.asarray(image.convert("YCbCr"), dtype=np.int16)
    cb, cr = ycbcr[..., 1], ycbcr[..., 2]
    if np.abs(cb - 128).mean() < 3 and np.abs(cr - 128).mean() < 3:
        return None
    return (cb >= 77) & (cb <= 127) & (cr >= 133) & (cr <= 173)


def _skin_share(skin: npt.NDArray[np.bool_], face: Face) -> float:
    """Skin share of the face box's central half (the cheeks, nose and forehead, not the hair)."""
    top, left = face.top + face.height // 4, face.left + face.width // 4
    centre = skin[top : top + face.height // 2, left : left + face.width // 2]
    return float(centre.mean()) if centre.size else 0.0


def blur_faces(image: Image.Image, faces: list[Face]) -> Image.Image:
    """Each face box, grown by a fifth, replaced by a strong blur of itself."""
    out = image.copy()
    for face in faces:
        pad_w, pad_h = face.width // 5, face.height // 5
        box = (
            max(0, face.left - pad_w),
            max(0, face.top - pad_h),
            min(image.width, face.left + face.width + pad_w),
            min(image.height, face.top + face.height + pad_h),
        )
        region = out.crop(box).filter(ImageFilter.GaussianBlur(max(4, face.width // 6)))
        out.paste(region, box[:2])
    return out


def encode_jpeg(image: Image.Image, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
