"""prepare: decode and validate, clean up for privacy, preprocess, split.

Bad photos are a fact of life at the edge: corrupt or truncated files, thumbnails,
the same photo uploaded twice.  Each is dropped and counted in the report with its
reason, never fatal.  Pixels come from ``foundation.preprocessing.preprocess`` on the
cleaned bytes, the very function the edge predictor calls, and the split is stratified
per SKU with a fixed seed so the test split is the same for every model compared on it.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from components.ingest import IMAGES_DIR
from components.privacy import blur_faces, encode_jpeg, find_faces, strip_jpeg_metadata, strip_png_metadata
from foundation.catalogue import Catalogue
from foundation.errors import InvalidImage, InvalidInput
from foundation.layout import CATALOGUE_FILE, LABELS_FILE
from foundation.preprocessing import decode, preprocess

SPLITS = ("train", "val", "test")
REPORT_FILE = "report.json"
CLEAN_DIR = "clean"
MAX_LISTED_DROPS = 200
_PNG_PLAIN_INFO = {"dpi", "gamma", "srgb", "transparency", "aspect"}


@dataclass
class PrepareReport:
    """What went in, what was dropped and why, and what each split holds."""

    seen: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {"corrupt": 0, "too_small": 0, "duplicate": 0})
    drops: list[dict[str, str]] = field(default_factory=list)
    metadata_stripped: int = 0
    faces_blurred: int = 0
    per_label: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, name: str, detail: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        if len(self.drops) < MAX_LISTED_DROPS:
            self.drops.append({"file": name, "reason": reason, "detail": detail[:200]})


@dataclass(frozen=True)
class Split:
    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int32]
    files: list[str]


@dataclass(frozen=True)
class PreparedData:
    """The prepare step's output folder, read back by train and evaluate."""

    root: Path

    @property
    def labels(self) -> list[str]:
        return list(json.loads((self.root / LABELS_FILE).read_text()))

    @property
    def catalogue(self) -> Catalogue:
        return Catalogue.from_bytes((self.root / CATALOGUE_FILE).read_bytes())

    @property
    def report(self) -> dict[str, object]:
        return dict(json.loads((self.root / REPORT_FILE).read_text()))

    def split(self, name: str) -> Split:
        with np.load(self.root / f"{name}.npz") as data:
            return Split(data["x"], data["y"], [str(f) for f in data["files"]])


def clean(data: bytes, face_side: int) -> tuple[bytes, bool, int]:
    """Metadata-free bytes (faces blurred), whether metadata was found, and how many faces."""
    small = decode(data, min_side=face_side * 3 // 4)  # JPEG draft mode: a quarter of the pixels
    if data[:2] == b"\xff\xd8":
        stripped = strip_jpeg_metadata(data)
        had_metadata = len(stripped) != len(data)
    else:
        with Image.open(io.BytesIO(data)) as original:
            had_metadata = bool(set(original.info) - _PNG_PLAIN_INFO)
            stripped = strip_png_metadata(original)
    faces = find_faces(small, face_side)
    if faces:
        full = decode(data)
        factor = full.width / small.width
        stripped = encode_jpeg(blur_faces(full, [face.scaled(factor) for face in faces]))
    return stripped, had_metadata, len(faces)


def stratified_split(
    labels: npt.NDArray[np.int32], names: list[str], fractions: tuple[float, float], seed: int
) -> dict[str, npt.NDArray[np.int64]]:
    """Indices per split; each SKU is split on its own so every split holds every SKU.

    Photos of a SKU are ordered by a seeded hash of their name, not by a shared random
    stream, so a photo's split does not change when another SKU is added: the old
    SKUs' test photos stay the same across rounds and models compare on them fairly.
    """
    parts: dict[str, list[int]] = {name: [] for name in SPLITS}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label).tolist()
        idx = sorted(members, key=lambda i: hashlib.sha256(f"{seed}:{names[i]}".encode()).digest())
        n = len(idx)
        n_val = max(1, round(n * fractions[0])) if n >= 3 else 0
        n_test = max(1, round(n * fractions[1])) if n >= 3 else 0
        parts["test"] += idx[:n_test]
        parts["val"] += idx[n_test : n_test + n_val]
        parts["train"] += idx[n_test + n_val :]
    return {name: np.asarray(sorted(v), dtype=np.int64) for name, v in parts.items()}


def _admit(data: bytes, name: str, smallest: int, seen: set[str], report: PrepareReport) -> str | None:
    """The photo's sha256 if it is worth cleaning; otherwise its drop is counted in the report."""
    digest = hashlib.sha256(data).hexdigest()
    if digest in seen:
        report.drop("duplicate", name, f"same bytes as an earlier photo ({digest[:12]}…)")
        return None
    seen.add(digest)
    try:
        with Image.open(io.BytesIO(data)) as head:
            width, height = head.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        report.drop("corrupt", name, str(exc))
        return None
    if min(width, height) < smallest:
        report.drop("too_small", name, f"{width}x{height} is under {smallest} pixels on a side")
        return None
    return digest


@dataclass
class _Kept:
    pixels: list[npt.NDArray[np.float32]] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def _clean_all(
    dataset: Path, out: Path, labels: list[str], image_size: int, smallest: int, face_side: int
) -> tuple[_Kept, PrepareReport]:
    """Every photo admitted, cleaned and preprocessed, or dropped with its reason."""
    report, kept, seen = PrepareReport(), _Kept(), set[str]()
    for index, sku in enumerate(labels):
        for path in sorted((dataset / IMAGES_DIR / sku).glob("*")):
            name = f"{sku}/{path.name}"
            report.seen += 1
            data = path.read_bytes()
            digest = _admit(data, name, smallest, seen, report)
            if digest is None:
                continue
            try:
                cleaned, had_metadata, faces = clean(data, face_side)
                tensor = preprocess(cleaned, image_size)
            except InvalidImage as exc:
                report.drop("corrupt", name, str(exc))
                continue
            report.metadata_stripped += int(had_metadata)
            report.faces_blurred += faces
            ext = "jpg" if cleaned[:2] == b"\xff\xd8" else "png"
            target = out / CLEAN_DIR / sku / f"{digest}.{ext}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(cleaned)
            kept.pixels.append(tensor)
            kept.targets.append(index)
            kept.names.append(name)
    return kept, report


def prepare(
    dataset: Path,
    out: Path,
    image_size: int,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    min_side: int | None = None,
    face_side: int = 200,
) -> PrepareReport:
    """Turn an ingested snapshot into train/val/test arrays plus a report."""
    catalogue = Catalogue.from_bytes((dataset / CATALOGUE_FILE).read_bytes())
    labels = catalogue.skus
    kept, report = _clean_all(dataset, out, labels, image_size, min_side or image_size, face_side)
    report.kept = len(kept.names)
    counts = Counter(kept.targets)
    report.per_label = {sku: counts.get(i, 0) for i, sku in enumerate(labels)}
    missing = [sku for sku, n in report.per_label.items() if n < 3]
    if missing:
        raise InvalidInput(f"edge {catalogue.edge}: fewer than 3 usable photos for SKUs {missing}")
    x = np.stack(kept.pixels)
    y = np.asarray(kept.targets, dtype=np.int32)
    names = kept.names
    for split, idx in stratified_split(y, names, (val_fraction, test_fraction), seed).items():
        np.savez(out / f"{split}.npz", x=x[idx], y=y[idx], files=np.asarray([names[i] for i in idx]))
        report.splits[split] = len(idx)
    (out / LABELS_FILE).write_text(json.dumps(labels))
    (out / CATALOGUE_FILE).write_bytes(catalogue.to_bytes())
    (out / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2))
    return report
