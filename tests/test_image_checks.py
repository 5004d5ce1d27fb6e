"""The receiver's check of an arriving image: its structure whole, no pixels decoded."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from foundation.errors import InvalidImage
from foundation.preprocessing import check_complete, check_decodes

FORMATS = {
    "jpeg": ("JPEG", {}),
    "progressive jpeg": ("JPEG", {"progressive": True}),
    "jpeg with restart markers": ("JPEG", {"restart_marker_blocks": 4}),
    "png": ("PNG", {}),
}


def encoded(kind: str, pixels: np.ndarray | None = None) -> bytes:
    fmt, options = FORMATS[kind]
    buf = io.BytesIO()
    pixels = skdata.chelsea() if pixels is None else pixels  # type: ignore[no-untyped-call]
    Image.fromarray(pixels).save(buf, fmt, **options)
    return buf.getvalue()


def refused(data: bytes, check: object) -> bool:
    try:
        check(data)  # type: ignore[operator]
    except InvalidImage:
        return True
    return False


@pytest.mark.parametrize("kind", list(FORMATS))
def test_a_whole_image_passes(kind: str) -> None:
    assert check_complete(encoded(kind)).format == FORMATS[kind][0]


def test_bytes_after_a_jpegs_end_marker_are_allowed() -> None:
    """Cameras append data after the end-of-image marker (a second image, maker notes)."""
    assert check_complete(encoded("jpeg") + b"maker notes" * 100).format == "JPEG"


@pytest.mark.parametrize("kind", list(FORMATS))
def test_an_image_cut_anywhere_after_its_header_is_refused(kind: str) -> None:
    data = encoded(kind)
    for cut in range(len(data) // 20, len(data) - 1, len(data) // 41):
        with pytest.raises(InvalidImage, match="truncated or corrupt"):
            check_complete(data[:cut])


def test_a_progressive_jpeg_cut_after_a_comment_that_holds_an_end_marker_is_refused() -> None:
    """The end-of-image bytes inside a segment between two scans are not its end."""
    data = encoded("progressive jpeg")
    second_scan = data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)
    comment = b"\xff\xfe\x00\x06ab\xff\xd9"
    whole = data[:second_scan] + comment + data[second_scan:]

    assert check_complete(whole).format == "JPEG"
    with pytest.raises(InvalidImage, match="end-of-image"):
        check_complete(whole[: second_scan + len(comment) + 100])


def test_a_png_chunk_that_fails_its_crc_is_refused() -> None:
    data = bytearray(encoded("png"))
    first_idat = data.index(b"IDAT")
    data[first_idat + 100] ^= 0xFF
    with pytest.raises(InvalidImage, match="CRC"):
        check_complete(bytes(data))


def test_a_jpeg_whose_segment_runs_past_the_end_is_refused() -> None:
    data = bytearray(encoded("jpeg"))
    struct.pack_into(">H", data, 4, 0xFFF0)  # the first segment (APP0) claims 64 KB
    with pytest.raises(InvalidImage):
        check_complete(bytes(data[:2000]))


def test_it_refuses_every_damage_a_full_decode_refuses() -> None:
    """Cuts, zeroed runs and removed ranges at seeded places: the structure check is at least
    as strict as decoding every byte, at a fraction of the cost."""
    rng = np.random.default_rng(7)
    for kind in FORMATS:
        data = encoded(kind, skdata.astronaut())  # type: ignore[no-untyped-call]
        for _ in range(25):
            start, length = int(rng.integers(0, len(data))), int(rng.integers(1, 5000))
            damage = int(rng.integers(3))
            if damage == 0:
                bad = data[:start]
            elif damage == 1:
                bad = data[:start] + bytes(length) + data[start + length :]
            else:
                bad = data[:start] + data[start + length :]
            assert refused(bad, check_complete) or not refused(bad, check_decodes), (kind, damage, start)
