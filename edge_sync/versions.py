"""Model versions delivered to an edge's bucket: which is newest, and fetching it verified.

The edge bucket is the source of truth: the publisher copies a version there only after
it passed the gate, and writes its manifest last, so a version without a manifest is
still being copied and is ignored.  Nothing is handed to a target before every file was
downloaded and matched the manifest's sha256 and size.
"""

from __future__ import annotations

import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edge_sync.reads import ObjectReader
from edgecore.errors import IntegrityError, InvalidInput, NotFound, PayloadTooLarge
from edgecore.layout import MANIFEST, Layout, Location, check_relative_path, parse_version, version_of_key
from edgecore.manifest import Manifest

MAX_MANIFEST_BYTES = 4 * 1_048_576
IN_MEMORY_BYTES = 16 * 1_048_576
"""Files up to this size are verified in memory when no local copy is wanted."""


@dataclass(frozen=True)
class Candidate:
    """A gated model version in an edge's bucket, with its manifest."""

    edge: str
    model: str
    version: str
    prefix: Location
    manifest: Manifest
    manifest_bytes: bytes
    """Exactly as stored, so a local copy carries the manifest it was verified against."""
    delivered: tuple[str, ...] = ()
    """Every version with a folder in the edge bucket when this one was found, newest first."""

    @property
    def uri(self) -> str:
        """What a KServe storage initializer downloads (the edge's own copy)."""
        return self.prefix.uri

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.manifest.files.values())


@dataclass(frozen=True)
class Fetched:
    candidate: Candidate
    path: Path | None
    """The verified local copy; None when the files were only verified, not kept."""
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.candidate.size / 1_048_576 / max(self.seconds, 1e-9)


def delivered_versions(store: ObjectReader, layout: Layout, edge: str, model: str) -> list[str]:
    """Versions with a folder in the edge bucket, newest first (manifest not checked)."""
    prefix = layout.edge_models_prefix(edge, model)
    try:
        keys = store.list_prefixes(prefix)
    except NotFound:
        return []
    versions = {v for key in keys if (v := version_of_key(key, prefix.key))}
    return sorted(versions, key=parse_version, reverse=True)


def newest_gated(store: ObjectReader, layout: Layout, edge: str, model: str) -> Candidate | None:
    """The newest version whose manifest is written; its manifest must be valid.

    A newest version with an unreadable manifest is refused (IntegrityError), never
    skipped for an older one: the controller acts only on the newest gated version.
    One recursive listing of the model's folder says which versions exist and which
    have their manifest, so finding the newest costs one request, not one per version.
    """
    folder = layout.edge_models_prefix(edge, model)
    delivered: set[str] = set()
    gated: set[str] = set()
    try:
        for obj in store.list(folder):
            version = version_of_key(obj.location.key, folder.key)
            if version is not None:
                delivered.add(version)
                if obj.location.key == f"{folder.key}{version}/{MANIFEST}":
                    gated.add(version)
    except NotFound:
        return None
    versions = tuple(sorted(delivered, key=parse_version, reverse=True))
    for version in versions:
        if version not in gated:
            continue  # still being copied: the manifest comes last
        prefix = layout.edge_model_prefix(edge, model, version)
        where = Location(prefix.bucket, prefix.key + MANIFEST)
        try:
            raw = store.get_bytes(where, max_bytes=MAX_MANIFEST_BYTES)
        except NotFound:
            continue  # deleted since the listing (retention): as if never gated
        try:
            manifest = Manifest.from_bytes(raw, where.uri)
        except InvalidInput as exc:
            raise IntegrityError(f"edge {edge} model {model} {version}: {exc}") from exc
        if manifest.kind != "model" or manifest.name != model or manifest.version != version:
            raise IntegrityError(
                f"edge {edge}: manifest {where.uri} describes {manifest.kind} {manifest.name} "
                f"{manifest.version}, not model {model} {version}"
            )
        if not manifest.files:
            raise IntegrityError(f"edge {edge}: manifest {where.uri} lists no files")
        return Candidate(edge, model, version, prefix, manifest, raw, versions)
    return None


def fetch_verified(store: ObjectReader, candidate: Candidate, dest: Path, workers: int = 8) -> Fetched:
    """Download every listed file into ``dest`` and check it against the manifest.

    Files land in a sibling ``.partial`` folder first, so ``dest`` only ever holds a
    complete, verified copy; a copy already there is re-verified, not re-downloaded.
    """
    started = time.monotonic()
    manifest = candidate.manifest
    if dest.is_dir():
        try:
            manifest.verify_dir(dest)
            return Fetched(candidate, dest, time.monotonic() - started)
        except IntegrityError:
            shutil.rmtree(dest)
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)

    def one(name: str) -> None:
        entry = manifest.files[name]
        loc = Location(candidate.prefix.bucket, candidate.prefix.key + check_relative_path(name))
        store.download(loc, partial / name, expected_sha256=entry.sha256)

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(one, sorted(manifest.files)))
        manifest.verify_dir(partial)
        (partial / MANIFEST).write_bytes(candidate.manifest_bytes)
    except NotFound as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise IntegrityError(f"edge {candidate.edge} {candidate.model} {candidate.version}: {exc}") from exc
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    partial.replace(dest)
    return Fetched(candidate, dest, time.monotonic() - started)


def verify_remote(store: ObjectReader, candidate: Candidate, scratch: Path, workers: int = 8) -> Fetched:
    """Read every file of the edge bucket's copy and check it, keeping nothing.

    For a target that fetches the version itself (KServe's storage initializer): small
    files are hashed in memory, large ones stream through ``scratch`` and are removed.
    """
    started = time.monotonic()
    manifest = candidate.manifest

    def one(name: str) -> None:
        entry = manifest.files[name]
        loc = Location(candidate.prefix.bucket, candidate.prefix.key + check_relative_path(name))
        if entry.size <= IN_MEMORY_BYTES:
            try:
                data = store.get_bytes(loc, expected_sha256=entry.sha256, max_bytes=entry.size)
            except PayloadTooLarge as exc:
                raise IntegrityError(f"{loc.uri}: larger than the manifest's {entry.size} bytes") from exc
            if len(data) != entry.size:
                raise IntegrityError(f"{loc.uri}: {len(data)} bytes, the manifest says {entry.size}")
            return
        path = scratch / f"{uuid.uuid4().hex}.part"
        try:
            stored = store.download(loc, path, expected_sha256=entry.sha256)
            if stored.size != entry.size:
                raise IntegrityError(f"{loc.uri}: {stored.size} bytes, the manifest says {entry.size}")
        finally:
            path.unlink(missing_ok=True)

    try:
        if workers <= 1:
            for name in sorted(manifest.files):
                one(name)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(one, sorted(manifest.files)))
    except NotFound as exc:
        raise IntegrityError(f"edge {candidate.edge} {candidate.model} {candidate.version}: {exc}") from exc
    return Fetched(candidate, None, time.monotonic() - started)
