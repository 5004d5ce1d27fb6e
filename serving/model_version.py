"""One model version, loaded, verified and warmed up, ready to answer.

A version comes from a local directory or an ``s3://`` prefix (downloaded with
KServe's own ``kserve_storage``, as KServe's storage initializer would).  Nothing is
used before every file the manifest lists has been checked against its sha256: a
half-copied or tampered version never reaches a kiosk.  The LiteRT flatbuffer runs by
default (a few tens of microseconds per image); the SavedModel is only a fallback, for
a version exported without a ``.tflite`` file, because importing TensorFlow costs
seconds and hundreds of megabytes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from edgecore.catalogue import Catalogue
from edgecore.errors import IntegrityError, NotFound, ServiceUnavailable
from edgecore.layout import (
    CATALOGUE_FILE,
    LABELS_FILE,
    MANIFEST,
    SAVED_MODEL_DIR,
    TFLITE_FILE,
    check_name,
    parse_version,
)
from edgecore.manifest import Manifest
from edgecore.settings import Settings

Probabilities = npt.NDArray[np.float32]
_DOWNLOAD_TIMEOUT_S = 600
_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class Runner(Protocol):
    """Runs a float32 batch ``(N, S, S, 3)`` through a model, returns ``(N, labels)``."""

    kind: str

    def __call__(self, pixels: npt.NDArray[np.float32]) -> Probabilities: ...


class LiteRTRunner:
    """The LiteRT interpreter, invoked once per image (its input is ``[1, S, S, 3]``).

    An interpreter is not thread-safe, so a lock guards invoke; it is uncontended when
    the server runs inference on its event loop, and keeps a warm-up thread safe.
    """

    kind = "litert"

    def __init__(self, path: Path, image_size: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interpreter = Interpreter(model_path=str(path), num_threads=1)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise IntegrityError(f"{path}: not a loadable LiteRT model: {exc}") from exc
        inp = self._interpreter.get_input_details()[0]
        out = self._interpreter.get_output_details()[0]
        expected = [1, image_size, image_size, 3]
        if list(inp["shape"]) != expected or inp["dtype"] is not np.float32:
            raise IntegrityError(
                f"{path}: input is {list(inp['shape'])} {inp['dtype'].__name__}, expected {expected} float32"
            )
        self._input = int(inp["index"])
        self._output = int(out["index"])
        self.classes = int(out["shape"][-1])
        self._lock = threading.Lock()

    def __call__(self, pixels: npt.NDArray[np.float32]) -> Probabilities:
        result = np.empty((len(pixels), self.classes), dtype=np.float32)
        with self._lock:
            for i in range(len(pixels)):
                self._interpreter.set_tensor(self._input, pixels[i : i + 1])
                self._interpreter.invoke()
                result[i] = self._interpreter.get_tensor(self._output)[0]
        return result


class SavedModelRunner:
    """The TensorFlow SavedModel's ``serve`` endpoint (slow to import; fallback only)."""

    kind = "saved_model"

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        try:
            self._model = tf.saved_model.load(str(path))
            self._fn: Any = self._model.signatures["serving_default"]
        except (OSError, ValueError, KeyError) as exc:
            raise IntegrityError(f"{path}: not a loadable SavedModel: {exc}") from exc
        self._tf = tf

    def __call__(self, pixels: npt.NDArray[np.float32]) -> Probabilities:
        outputs = self._fn(self._tf.constant(pixels))
        return np.asarray(next(iter(outputs.values())), dtype=np.float32)


@dataclass(frozen=True)
class ModelVersion:
    """Everything one request needs from the version that answers it."""

    name: str
    version: str
    labels: tuple[str, ...]
    catalogue: Catalogue
    manifest: Manifest
    runner: Runner
    root: Path
    products: tuple[dict[str, Any], ...]
    """Catalogue data of each label, in output order, ready to put in an answer."""
    products_json: tuple[str, ...]

    def probabilities(self, pixels: npt.NDArray[np.float32]) -> Probabilities:
        return self.runner(pixels)

    def warm_up(self, image_size: int) -> None:
        """Run a few inferences so the first kiosk request is not the one paying for it."""
        blank = np.full((1, image_size, image_size, 3), 0.5, dtype=np.float32)
        for _ in range(3):
            out = self.runner(blank)
        if out.shape != (1, len(self.labels)) or not np.all(np.isfinite(out)):
            raise IntegrityError(
                f"model {self.name} {self.version}: warm-up produced {out.shape}, "
                f"expected (1, {len(self.labels)}) finite probabilities"
            )


def open_version(root: Path, settings: Settings, prefer: str = "litert") -> ModelVersion:
    """Verify a version directory against its manifest and build its runner."""
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise NotFound(f"{root}: no {MANIFEST}, so not a published model version")
    manifest = Manifest.from_bytes(manifest_path.read_bytes(), str(manifest_path))
    if manifest.kind != "model":
        raise IntegrityError(f"{manifest_path}: kind is {manifest.kind!r}, not 'model'")
    check_name(manifest.name, "model name")
    parse_version(manifest.version)
    for required in (LABELS_FILE, CATALOGUE_FILE):
        if required not in manifest.files:
            raise IntegrityError(f"model {manifest.name} {manifest.version}: manifest lists no {required}")
    _restore_empty_files(root, manifest)
    manifest.verify_dir(root)

    labels = _read_labels(root / LABELS_FILE, manifest)
    catalogue = Catalogue.from_bytes((root / CATALOGUE_FILE).read_bytes())
    missing = sorted(set(labels) - set(catalogue.skus))
    if missing:
        raise IntegrityError(
            f"model {manifest.name} {manifest.version}: labels {missing} are not in its catalogue"
        )
    runner = _build_runner(root, manifest, settings.image_size, prefer)
    products = tuple(_product_answer(catalogue, sku) for sku in labels)
    version = ModelVersion(
        name=manifest.name,
        version=manifest.version,
        labels=tuple(labels),
        catalogue=catalogue,
        manifest=manifest,
        runner=runner,
        root=root,
        products=products,
        products_json=tuple(json.dumps(p) for p in products),
    )
    version.warm_up(settings.image_size)
    return version


def _product_answer(catalogue: Catalogue, sku: str) -> dict[str, Any]:
    product = catalogue.product(sku)
    return {
        "name": product.name,
        "price": str(product.price),
        "currency": catalogue.currency,
        "promotion": product.promotion,
    }


def _read_labels(path: Path, manifest: Manifest) -> list[str]:
    try:
        labels = json.loads(path.read_bytes())
    except ValueError as exc:
        raise IntegrityError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise IntegrityError(f"{path}: expected a non-empty JSON list of SKUs")
    if manifest.labels and manifest.labels != labels:
        raise IntegrityError(f"{path}: labels differ from the manifest's labels")
    return labels


def _build_runner(root: Path, manifest: Manifest, image_size: int, prefer: str) -> Runner:
    has_tflite = TFLITE_FILE in manifest.files
    has_saved = any(name.startswith(SAVED_MODEL_DIR + "/") for name in manifest.files)
    if (prefer == "litert" or not has_saved) and has_tflite:
        return LiteRTRunner(root / TFLITE_FILE, image_size)
    if has_saved:
        return SavedModelRunner(root / SAVED_MODEL_DIR)
    raise IntegrityError(
        f"model {manifest.name} {manifest.version}: neither {TFLITE_FILE} nor {SAVED_MODEL_DIR}/ is listed"
    )


def _restore_empty_files(root: Path, manifest: Manifest) -> None:
    """kserve_storage skips zero-byte objects; an empty file's digest is known, so recreate it."""
    for name, entry in manifest.files.items():
        path = root / name
        if entry.size == 0 and entry.sha256 == _EMPTY_SHA256 and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()


class VersionStore:
    """Fetches versions into a local cache (``<state_dir>/serving/<model>/<version>``)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cache = settings.state_dir / "serving"

    def fetch(self, uri: str) -> Path:
        """A verified local copy of the version at ``uri`` (a directory is used in place)."""
        if not uri.startswith("s3://"):
            root = Path(uri.removeprefix("file://"))
            if not root.is_dir():
                raise NotFound(f"model version directory {root} does not exist")
            return root
        return self._download(uri.rstrip("/") + "/")

    def open(self, uri: str, prefer: str = "litert") -> ModelVersion:
        return open_version(self.fetch(uri), self._settings, prefer)

    def _download(self, uri: str) -> Path:
        self._cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="download-", dir=self._cache))
        try:
            self._storage_download(uri, staging)
            manifest_path = staging / MANIFEST
            if not manifest_path.is_file():
                raise NotFound(f"{uri}: no {MANIFEST} (version not published, or wrong prefix)")
            manifest = Manifest.from_bytes(manifest_path.read_bytes(), uri + MANIFEST)
            _restore_empty_files(staging, manifest)
            manifest.verify_dir(staging)
            final = self._cache / check_name(manifest.name, "model name") / manifest.version
            if final.exists():
                shutil.rmtree(final)
            final.parent.mkdir(parents=True, exist_ok=True)
            staging.replace(final)
            return final
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _storage_download(self, uri: str, dest: Path) -> None:
        """``kserve_storage.Storage.download`` in a fresh interpreter.

        kserve_storage downloads S3 objects with a forked ``multiprocessing.Pool``; forking
        the serving process (event loop, executor and uploader threads holding locks)
        can deadlock the children, so the download runs in a child that has no threads.
        It also reads its endpoint and credentials only from the environment, which is
        built here from the settings for that child alone.
        """
        s = self._settings
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": s.s3_endpoint_url,
            "AWS_ACCESS_KEY_ID": s.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": s.s3_secret_key.get_secret_value(),
            "AWS_DEFAULT_REGION": s.s3_region,
        }
        code = "import sys; from kserve_storage import Storage; Storage.download(sys.argv[1], sys.argv[2])"
        try:
            done = subprocess.run(
                [sys.executable, "-c", code, uri, str(dest)],
                env=env,
                capture_output=True,
                timeout=_DOWNLOAD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceUnavailable(
                f"download of model version {uri} took over {_DOWNLOAD_TIMEOUT_S} s"
            ) from exc
        if done.returncode != 0:
            last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no error output"])[-1]
            if "No model found" in last:  # kserve_storage's words for an empty prefix
                raise NotFound(f"no model version at {uri}")
            raise ServiceUnavailable(f"download of model version {uri} failed: {last}")
