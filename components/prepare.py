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
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from components.ingest import IMAGES_DIR
from components.privacy import blur_faces, encode_jpeg, find_faces, strip_jpeg_metadata, strip_png_metadata
from foundation.catalogue import Catalogue
from foundation.errors import InvalidImage, InvalidInput
from foundation.layout import CATALOGUE_FILE, LABELS_FILE, MANIFEST
from foundation.manifest import Manifest
from foundation.preprocessing import decode, preprocess

SPLITS = ("train", "val", "test")
REPORT_FILE = "report.json"
RETIRED_FILE = "retired.json"
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
    def retired(self) -> list[str]:
        """Products retired on purpose from the edge's catalogue: the only ones a new model may forget."""
        path = self.root / RETIRED_FILE
        return list(json.loads(path.read_text())) if path.is_file() else []

    @property
    def report(self) -> dict[str, object]:
        return dict(json.loads((self.root / REPORT_FILE).read_text()))

    def split(self, name: str) -> Split:
        with np.load(self.root / f"{name}.npz") as data:
            return Split(data["x"], data["y"], [str(f) for f in data["files"]])


def clean(data: bytes, face_side: int, blur: bool = False) -> tuple[bytes, bool, int]:
    """Metadata-free bytes (faces blurred where ``blur``), whether metadata was found, how many faces.

    Blurring is the dataset's choice (``blur_faces`` in its manifest): faces of shoppers
    in the background are private, but the detector can mistake packaging for a face and
    serving never blurs, so a dataset without people in its photos is left as it is.
    """
    if data[:2] == b"\xff\xd8":
        stripped = strip_jpeg_metadata(data)
        had_metadata = len(stripped) != len(data)
    else:
        with Image.open(io.BytesIO(data)) as original:
            had_metadata = bool(set(original.info) - _PNG_PLAIN_INFO)
            stripped = strip_png_metadata(original)
    if not blur:
        return stripped, had_metadata, 0
    small = decode(data, min_side=face_side * 3 // 4)  # JPEG draft mode: a quarter of the pixels
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

    A photo's split is decided by a seeded hash of its name alone (below ``test`` → test,
    then val, then train), so it never changes as photos and SKUs are added: a photo
    once held out stays held out, and models of successive rounds compare on the same
    test photos.  Only a SKU whose hashes left a split empty lends it its lowest photos.
    """
    parts: dict[str, list[int]] = {name: [] for name in SPLITS}
    test_cut, val_cut = fractions[1], fractions[1] + fractions[0]
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label).tolist()
        draws = {i: _unit_hash(seed, names[i]) for i in members}
        ranked = sorted(members, key=draws.__getitem__)
        own = {
            "test": [i for i in ranked if draws[i] < test_cut],
            "val": [i for i in ranked if test_cut <= draws[i] < val_cut],
            "train": [i for i in ranked if draws[i] >= val_cut],
        }
        if len(members) >= 3:
            for split in ("test", "val"):
                if not own[split]:  # a small SKU: lend this split the train photo ranked lowest
                    lent = own["train"].pop(0) if len(own["train"]) > 1 else None
                    own[split] = [lent] if lent is not None else []
        for split, idx in own.items():
            parts[split] += idx
    return {name: np.asarray(sorted(v), dtype=np.int64) for name, v in parts.items()}


def _unit_hash(seed: int, name: str) -> float:
    """A number in [0, 1) fixed by the seed and the photo's name."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


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
    blurred = set(_snapshot_metadata(dataset).get("blur_faces", []))
    for index, sku in enumerate(labels):
        for path in sorted((dataset / IMAGES_DIR / sku).glob("*")):
            name = f"{sku}/{path.name}"
            report.seen += 1
            data = path.read_bytes()
            digest = _admit(data, name, smallest, seen, report)
            if digest is None:
                continue
            try:
                cleaned, had_metadata, faces = clean(data, face_side, f"{IMAGES_DIR}/{name}" in blurred)
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
        raise InvalidInput(
            f"edge {catalogue.edge}: fewer than 3 usable photos for SKUs {missing}, which its catalogue "
            "lists: train on every version of its dataset (<name>@..), upload photos of them, or retire "
            "them (edgecore catalogue retire)"
        )
    x = np.stack(kept.pixels)
    y = np.asarray(kept.targets, dtype=np.int32)
    names = kept.names
    for split, idx in stratified_split(y, names, (val_fraction, test_fraction), seed).items():
        np.savez(out / f"{split}.npz", x=x[idx], y=y[idx], files=np.asarray([names[i] for i in idx]))
        report.splits[split] = len(idx)
    (out / LABELS_FILE).write_text(json.dumps(labels))
    (out / CATALOGUE_FILE).write_bytes(catalogue.to_bytes())
    (out / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2))
    (out / RETIRED_FILE).write_text(json.dumps(_retired(dataset)))
    return report


def _retired(snapshot: Path) -> list[str]:
    """What ingest recorded as retired on purpose."""
    return list(_snapshot_metadata(snapshot).get("retired", []))


def _snapshot_metadata(snapshot: Path) -> dict[str, Any]:
    """What ingest recorded about the snapshot (empty for a folder made by hand)."""
    path = snapshot / MANIFEST
    return Manifest.from_bytes(path.read_bytes(), str(path)).metadata if path.is_file() else {}
