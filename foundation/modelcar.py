"""Model versions as modelcars: OCI images whose ``/models`` KServe mounts at ``/mnt/models``.

KServe runs a modelcar as a sidecar that links its ``/models`` into the predictor, so the
image needs a shell: its base is Debian's static busybox (one small layer, built here,
the same bytes every time).  Above it, one layer holds the version: ``models/manifest.json``
first, then every file the manifest lists.  The manifest first lets a reader refuse any
member it does not list, or of another size, before writing a byte of it, so a layer
cannot unpack into more than its manifest promises.  Layers are built deterministically
(sorted names, zero times and owners), so pushing the same version twice uploads nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from foundation.errors import IntegrityError, InvalidInput
from foundation.layout import MANIFEST, check_relative_path
from foundation.manifest import Manifest
from foundation.oci import CONFIG_TYPE, LAYER_TYPE, MANIFEST_TYPE, Reference, Registry, sha256_digest
from foundation.settings import Settings
from foundation.tls import client_context, edge_context, require_https

MODELS = "models"
BASE_TOOLS = ("sh", "ln", "sleep", "ls", "cat", "echo", "find", "true")
VERSION_ANNOTATION = "io.edgecore.model-version"
MODEL_ANNOTATION = "io.edgecore.model"
LAYER_ANNOTATION = "io.edgecore.layer"


@dataclass(frozen=True)
class Layer:
    path: Path
    digest: str
    diff_id: str
    size: int


def model_repository(root: str, model: str, version: str | None = None) -> Reference:
    """Where a model's modelcars live: ``<root>/models/<model>:<version>`` (root: ``host[:port][/path]``)."""
    registry, _, path = root.partition("/")
    return Reference(registry, f"{path}/models/{model}".lstrip("/"), version or "latest")


def write_layer(members: list[tuple[str, Path | None, str | None]], dest: Path) -> Layer:
    """A gzipped tar of ``(name, file, link target)`` members, in the given order, reproducible."""
    raw = hashlib.sha256()

    class _Hashing(io.RawIOBase):
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            raw.update(data)
            return int(self.inner.write(data))

    with (
        dest.open("wb") as out,
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as zipped,
        tarfile.open(fileobj=_Hashing(zipped), mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, source, link in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if link is not None:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, link, 0o777
                tar.addfile(info)
            elif source is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = source.stat().st_size, 0o755 if name.startswith("bin/") else 0o644
                with source.open("rb") as data:
                    tar.addfile(info, data)
    digest, size = _file_digest(dest)
    return Layer(dest, digest, f"sha256:{raw.hexdigest()}", size)


def model_layer(files: Path, manifest: Manifest, dest: Path) -> Layer:
    """The version's layer: ``models/manifest.json`` (``manifest``, as published) first, then the files
    it lists from ``files``, sorted."""
    manifest.verify_dir(files)
    written = dest.with_name(MANIFEST)
    written.parent.mkdir(parents=True, exist_ok=True)
    written.write_bytes(manifest.to_bytes())
    members: list[tuple[str, Path | None, str | None]] = [
        (MODELS, None, None),
        (f"{MODELS}/{MANIFEST}", written, None),
    ]
    members += [(f"{MODELS}/{name}", files / name, None) for name in sorted(manifest.files)]
    return write_layer(members, dest)


def base_layer(busybox: Path, dest: Path) -> Layer:
    """The shell KServe's modelcar sidecar runs: a static busybox and the applets it calls."""
    if not busybox.is_file():
        raise InvalidInput(f"{busybox} does not exist: install Debian's busybox-static (make containers)")
    members: list[tuple[str, Path | None, str | None]] = [("bin", None, None), ("bin/busybox", busybox, None)]
    members += [(f"bin/{tool}", None, "busybox") for tool in BASE_TOOLS]
    members += [(name, None, None) for name in ("mnt", "tmp")]
    return write_layer(members, dest)


def push_image(
    registry: Registry,
    ref: Reference,
    layer: Layer,
    kind: str,
    base: tuple[dict[str, Any], dict[str, Any]] | None = None,
    annotations: dict[str, str] | None = None,
) -> Reference:
    """Push ``layer`` (annotated as ``kind``, above ``base``'s manifest and config, whose blobs are
    already in ``ref``'s repository) and a manifest tagged ``ref``; the reference pinned to its digest."""
    base_manifest, base_config = base if base is not None else ({"layers": []}, _empty_config())
    registry.push_blob(ref, layer.digest, layer.path)
    config = json.loads(json.dumps(base_config))
    config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(layer.diff_id)
    config.setdefault("config", {})["Cmd"] = ["sh", "-c", "sleep infinity"]
    raw_config = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = sha256_digest(raw_config)
    registry.push_blob(ref, config_digest, raw_config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": len(raw_config)},
        "layers": [
            *base_manifest["layers"],
            {
                "mediaType": LAYER_TYPE,
                "digest": layer.digest,
                "size": layer.size,
                "annotations": {LAYER_ANNOTATION: kind},
            },
        ],
        "annotations": annotations or {},
    }
    return registry.push_manifest(ref, json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())


def push_base(registry: Registry, ref: Reference, busybox: Path) -> Reference:
    """The modelcar base (a busybox layer) pushed as ``ref``; every modelcar mounts its layer."""
    with tempfile.TemporaryDirectory() as scratch:
        layer = base_layer(busybox, Path(scratch) / "base.tar.gz")
        return push_image(registry, ref, layer, "base")


def push_version(
    registry: Registry, root: str, base: Reference | None, files: Path, manifest: Manifest
) -> Reference:
    """Push a published version as ``<root>/models/<model>:<version>`` above ``base`` (None: the model
    layer alone, which our own readers load but KServe cannot run as a sidecar); pinned by digest."""
    ref = model_repository(root, manifest.name, manifest.version)
    below = None
    if base is not None:
        base_manifest, _ = registry.manifest(base)
        config_entry = base_manifest["config"]
        raw_config = bytearray()
        registry.blob(base, config_entry["digest"], int(config_entry["size"]), raw_config.extend)
        for entry in base_manifest["layers"]:
            registry.mount_blob(ref, entry["digest"], base)
        below = (base_manifest, json.loads(bytes(raw_config)))
    with tempfile.TemporaryDirectory() as scratch:
        layer = model_layer(files, manifest, Path(scratch) / "model.tar.gz")
        annotations = {MODEL_ANNOTATION: manifest.name, VERSION_ANNOTATION: manifest.version}
        return push_image(registry, ref, layer, MODELS, below, annotations)


def core_registry(settings: Settings) -> Registry:
    """The core's registry, reached with the core's client certificate."""
    ca, cert, key = settings.modelcar_client()
    return Registry(httpx.Client(verify=client_context(ca, cert, key)))


def door_registry(settings: Settings, edge: str) -> Registry | None:
    """An edge's read-only registry: the core's front door, with the edge's login (None without a token)."""
    token = settings.door.token.get_secret_value()
    if not token:
        return None
    require_https(settings.door.url, "the core's front door (EDGECORE_DOOR_URL)")
    return Registry(httpx.Client(verify=edge_context(settings), auth=httpx.BasicAuth(edge, token)))


def door_host(settings: Settings) -> str:
    """The front door as a registry host (``host:port``), as ``oci://`` references name it."""
    return httpx.URL(settings.door.url).netloc.decode()


def door_reference(settings: Settings, edge: str, model: str, version: str) -> Reference:
    """Where an edge pulls a version's modelcar: ``<door host>/edges/<edge>/models/<model>:<version>``."""
    return Reference(door_host(settings), f"edges/{edge}/models/{model}", version)


def pusher(settings: Settings, registry: Registry) -> Callable[[Path, Manifest], str] | None:
    """What publish pushes each version with (None where no modelcar registry is set); answers its digest."""
    root = settings.modelcar.registry
    if not root:
        return None
    base = Reference.parse(settings.modelcar_base)

    def push(files: Path, manifest: Manifest) -> str:
        pushed = push_version(registry, root, base, files, manifest)
        assert pushed.digest is not None
        return pushed.digest

    return push


def pull_version(
    registry: Registry, ref: Reference, dest: Path, expected: Manifest | None = None
) -> Manifest:
    """Unpack the version ``ref`` holds into ``dest`` (replaced whole); its manifest.

    With ``expected`` (the manifest the caller trusts, e.g. the front door's), the image
    must hold exactly that version, and nothing it does not list is written; every file is
    checked against its sha256 either way.
    """
    manifest, _ = registry.manifest(ref)
    entry = model_layer_entry(manifest, str(ref), expected)
    staging = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.partial")  # concurrent pulls apart
    staging.mkdir(parents=True)
    try:
        with tempfile.TemporaryFile(dir=staging.parent) as blob:
            registry.blob(ref, entry["digest"], int(entry["size"]), blob.write)
            blob.seek(0)
            found = unpack(blob, staging, str(ref), expected)
        found.verify_dir(staging)
        shutil.rmtree(dest, ignore_errors=True)
        staging.replace(dest)
        return found
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def model_layer_entry(
    manifest: dict[str, Any], where: str, expected: Manifest | None = None
) -> dict[str, Any]:
    """The image's model layer: exactly one, and the last, so no layer applied after it can change
    ``/models`` under a runtime that applies them all (a kubelet); with ``expected``, no larger than
    a layer of those files can be."""
    layers = manifest["layers"]
    kinds = [layer.get("annotations", {}).get(LAYER_ANNOTATION) for layer in layers]
    if kinds.count(MODELS) != 1 or kinds[-1] != MODELS:
        raise IntegrityError(f"{where} is not an edgecore modelcar (one model layer, the last)")
    entry: dict[str, Any] = layers[-1]
    if expected is not None:
        bound = (
            sum(f.size for f in expected.files.values()) + 1024 * (len(expected.files) + 2) + 16 * 1_048_576
        )
        if int(entry["size"]) > bound:
            raise IntegrityError(f"{where}: its model layer is larger than the version's files can make")
    return entry


def unpack(blob: Any, dest: Path, where: str, expected: Manifest | None = None) -> Manifest:
    """The layer's files into ``dest``: its manifest first (``expected``, where given), then only the
    files it lists, each at its listed size, so nothing unlisted is ever written."""
    manifest: Manifest | None = None
    with tarfile.open(fileobj=blob, mode="r|gz") as tar:
        for member in tar:
            if member.isdir() and member.name.rstrip("/") == MODELS:
                continue
            name = member.name.removeprefix(f"{MODELS}/")
            if not member.isfile() or name == member.name:
                raise IntegrityError(f"{where}: unexpected layer member {member.name[:120]!r}")
            if manifest is None:
                manifest = _layer_manifest(tar, member, name, dest, where, expected)
                continue
            try:
                check_relative_path(name)
            except InvalidInput as exc:
                raise IntegrityError(f"{where}: {exc}") from exc
            listed = manifest.files.get(name)
            if listed is None or listed.size != member.size:
                raise IntegrityError(f"{where}: {name[:120]!r} is not in its manifest at that size")
            _write_member(tar, member, dest / name, where)
    if manifest is None:
        raise IntegrityError(f"{where}: the model layer is empty")
    return manifest


def _layer_manifest(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    name: str,
    dest: Path,
    where: str,
    expected: Manifest | None,
) -> Manifest:
    if name != MANIFEST or member.size > 16 * 1_048_576:
        raise IntegrityError(f"{where}: the layer does not start with its {MANIFEST}")
    raw = _read(tar, member)
    try:
        manifest = Manifest.from_bytes(raw, where)
    except InvalidInput as exc:
        raise IntegrityError(str(exc)) from exc
    if expected is not None and manifest != expected:
        raise IntegrityError(
            f"{where} holds {manifest.name} {manifest.version}, not {expected.name} {expected.version} "
            "as its manifest says"
        )
    (dest / MANIFEST).write_bytes(raw)
    return manifest


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path, where: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        assert source is not None
        with path.open("xb") as out:  # a name listed twice, or a file where a folder is, is refused
            shutil.copyfileobj(source, out, 1 << 20)
    except OSError as exc:
        raise IntegrityError(f"{where}: {member.name[:120]!r} cannot be unpacked ({exc.strerror})") from exc


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    source = tar.extractfile(member)
    assert source is not None
    return source.read()


def _empty_config() -> dict[str, Any]:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "config": {}}


def _file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}", path.stat().st_size
