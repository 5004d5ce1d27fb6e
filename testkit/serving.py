"""Test support for the edge predictor: a tiny real model, its version files, a real server.

Model versions are written by the training side's own export step
(``components.export.export_model``, once per model) and then given the test edge's
catalogue and a version number as ``publish`` does, so the predictor is tested on
exactly the files the pipeline ships.  The model is a real Keras
CNN trained for a few seconds on generated kiosk photos of three coloured shapes, so
predictions are meaningful (and confident) rather than faked.
"""

from __future__ import annotations

import base64
import functools
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageDraw

from edgecore.stack.tools import free_port
from foundation.catalogue import Catalogue, Product
from foundation.layout import CATALOGUE_FILE, MANIFEST, Layout, Location, edge_model_name
from foundation.manifest import Manifest, entries_for_dir
from foundation.pointer import ModelPointer
from foundation.preprocessing import preprocess
from foundation.registry import write_pointer
from foundation.settings import Settings
from foundation.storage.store import ObjectStore

REPO = Path(__file__).resolve().parents[1]
SIZE = 64
LABELS = ["APPLE-RED", "LIME-GREEN", "BLUEBERRY-BOX"]
SHAPES = {
    "APPLE-RED": ("ellipse", (200, 30, 30)),
    "LIME-GREEN": ("rectangle", (40, 190, 40)),
    "BLUEBERRY-BOX": ("triangle", (40, 60, 210)),
}


def kiosk_jpeg(
    label: str, seed: int, size: tuple[int, int] = (640, 480), quality: int = 88, grain: float = 18.0
) -> bytes:
    """A 640×480 photo of one product shape on a counter with sensor noise of ``grain`` levels."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.normal(128, grain, (h, w, 3)).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(base, "RGB")
    draw = ImageDraw.Draw(img)
    kind, colour = SHAPES[label]
    side = int(rng.uniform(0.35, 0.6) * h)
    cx = int(w / 2 + rng.uniform(-0.1, 0.1) * h)
    cy = int(h / 2 + rng.uniform(-0.1, 0.1) * h)
    box = (cx - side // 2, cy - side // 2, cx + side // 2, cy + side // 2)
    jitter = tuple(int(c + rng.integers(-20, 20)) for c in colour)
    if kind == "ellipse":
        draw.ellipse(box, fill=jitter)
    elif kind == "rectangle":
        draw.rectangle(box, fill=jitter)
    else:
        draw.polygon([(box[0], box[3]), (box[2], box[3]), (cx, box[1])], fill=jitter)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def probe_photos(folder: Path, seed: int, per_product: int = 2) -> Path:
    """Probe photos ``<folder>/<SKU>/probe-<i>.jpg`` of every product, as a sync controller reads them."""
    for k, label in enumerate(LABELS):
        (folder / label).mkdir(parents=True)
        for i in range(per_product):
            (folder / label / f"probe-{i}.jpg").write_bytes(kiosk_jpeg(label, seed + 10 * k + i))
    return folder


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@functools.cache
def trained(seed: int, production: bool = False) -> Any:
    """A Keras CNN trained (once per process, seed and architecture) on generated kiosk photos.

    The tests use a two-layer network that trains in seconds; ``production`` builds the
    network the training step ships (``components.train.build_model``), for benchmarks
    whose figures must be those of the served model.
    """
    import keras

    from components.train import build_model

    keras.utils.set_random_seed(seed)
    x, y = [], []
    for i in range(48):
        for k, label in enumerate(LABELS):
            x.append(preprocess(kiosk_jpeg(label, seed * 10_000 + i * 7 + k), SIZE))
            y.append(k)
    model = (
        build_model(len(LABELS), SIZE)
        if production
        else keras.Sequential(
            [
                keras.Input((SIZE, SIZE, 3)),
                keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
                keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(len(LABELS), activation="softmax"),
            ]
        )
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3 if production else 0.01), loss="sparse_categorical_crossentropy"
    )
    model.fit(np.stack(x), np.array(y), epochs=12, batch_size=16, verbose=0)
    return model


def catalogue(edge: str) -> Catalogue:
    return Catalogue(
        edge=edge,
        products=[
            Product(sku="APPLE-RED", name="Red apple", price=Decimal("0.45"), promotion="3 for 1.20"),
            Product(sku="LIME-GREEN", name="Lime", price=Decimal("0.30")),
            Product(sku="BLUEBERRY-BOX", name="Blueberries 125 g", price=Decimal("2.49")),
        ],
    )


@functools.cache
def exported(seed: int, production: bool = False) -> Path:
    """The export step's folder for the model of ``seed`` (once per process: it takes seconds)."""
    from components.export import export_model

    root = Path(tempfile.mkdtemp(prefix=f"edgecore-export-{seed}-")) / "export"
    model = trained(seed, production)
    export_model(model, LABELS, catalogue("template"), root, SIZE, {"accuracy": 1.0}, {"seed": seed})
    return root


def write_version(
    root: Path, edge: str, version: str, seed: int = 0, production: bool = False, model: str | None = None
) -> Path:
    """A published version for ``edge`` (of ``model``, its products' by default): the export
    re-catalogued for the edge, numbered as publish does."""
    shutil.copytree(exported(seed, production), root)
    (root / CATALOGUE_FILE).write_bytes(catalogue(edge).to_bytes())
    template = Manifest.from_bytes((root / MANIFEST).read_bytes(), str(root))
    manifest = template.model_copy(
        update={
            "name": model or edge_model_name(edge),
            "version": version,
            "files": entries_for_dir(root),
            "metadata": {**template.metadata, "edge": edge},
        }
    )
    (root / MANIFEST).write_bytes(manifest.to_bytes())
    return root


def upload_version(store: ObjectStore, prefix: Location, root: Path) -> str:
    """Upload a version directory under ``prefix``, manifest last; returns the s3:// URI."""
    store.ensure_bucket(prefix.bucket)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)
    for path in [*files, root / MANIFEST]:
        store.put_file(Location(prefix.bucket, prefix.key + path.relative_to(root).as_posix()), path)
    return prefix.uri


def publish_to_edge(store: ObjectStore, layout: Layout, tmp: Path, edge: str, version: str, seed: int) -> str:
    """A version delivered to the edge bucket, as the sync controller delivers it."""
    root = write_version(tmp / version, edge, version, seed)
    return upload_version(store, layout.edge_model_prefix(edge, edge_model_name(edge), version), root)


def point_at(store: ObjectStore, layout: Layout, edge: str, version: str, uri: str) -> None:
    write_pointer(store, layout, edge, ModelPointer(model=edge_model_name(edge), version=version, uri=uri))


@dataclass(frozen=True)
class Server:
    url: str
    model: str
    edge: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running_server(
    settings: Settings,
    edge: str,
    state_dir: Path,
    model_uri: str | None = None,
    capture: bool = True,
    **env: str,
) -> Iterator[Server]:
    """``python -m serving.server`` as a real subprocess on a free loopback port (``env``: EDGECORE_*)."""
    port = free_port()
    log = state_dir / f"server-{port}.log"
    state_dir.mkdir(parents=True, exist_ok=True)
    child_env = {
        **os.environ,
        "EDGECORE_STATE_DIR": str(state_dir),
        "EDGECORE_S3_ENDPOINT": settings.s3.endpoint_url,
        **{f"EDGECORE_{k.upper()}": v for k, v in env.items()},
    }
    cmd = [sys.executable, "-m", "serving.server", "--edge", edge, "--http-port", str(port)]
    if model_uri:
        cmd += ["--model-uri", model_uri]
    if not capture:
        cmd.append("--no-capture")
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=child_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    model = edge_model_name(edge)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/v2/models/{model}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after 120 s:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield Server(url=url, model=model, edge=edge, process=proc, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def image_pixels(data: bytes) -> np.ndarray:
    return preprocess(data, SIZE)
