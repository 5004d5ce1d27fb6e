"""Versions in S3, in one place: claiming numbers, publishing, finding the newest, fetching verified.

A version is a folder (``.../<name>/vNNNNNN/``) that exists once its manifest does:
writers put every file first and the manifest last, readers trust nothing the manifest
does not list and check each file's sha256 and size against it.  The same rules hold for
the model registry, an edge's delivered copies and the training datasets.

* Numbers are claimed with an S3 conditional write of a claim object: of any number of
  writers racing for ``v000007`` exactly one wins, the others take the next number.  A
  claim without a manifest is a gap (a writer that died), never reused.
* The newest version is found with one recursive listing; a newest version whose
  manifest is invalid is refused, never skipped for an older one.
* The serving pointer (``foundation.pointer.ModelPointer``) says which version an edge's
  model server serves; it is read and written here only.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from foundation.errors import IntegrityError, InvalidInput, NotFound, PayloadTooLarge
from foundation.layout import (
    MANIFEST,
    Layout,
    Location,
    VersionedName,
    check_relative_path,
    format_version,
    parse_version,
    version_of_key,
)
from foundation.manifest import Manifest
from foundation.pointer import ModelPointer
from foundation.storage.objects import ObjectReader, ObjectStorage, ObjectWriter

MAX_MANIFEST_BYTES = 16 * 1_048_576
"""Largest manifest read: a dataset version of 20,000 images lists about 4 MB."""
MAX_POINTER_BYTES = 64 * 1024
MAX_CLAIM_TRIES = 100
IN_MEMORY_BYTES = 16 * 1_048_576
"""Files up to this size are verified in memory when no local copy is wanted."""


# -- numbers ---------------------------------------------------------------------------
def known_versions(store: ObjectReader, name: VersionedName) -> list[str]:
    """Versions with files or a claim, oldest first."""
    found: set[str] = set()
    try:
        for key in store.list_prefixes(name.versions):
            if version := version_of_key(key, name.versions.key):
                found.add(version)
        for obj in store.list(name.claims):
            if version := version_of_key(obj.location.key.removesuffix(".json"), name.claims.key):
                found.add(version)
    except NotFound:  # the bucket does not exist yet: no versions
        return []
    return sorted(found, key=parse_version)


def claim_next_version(store: ObjectStorage, name: VersionedName, owner: str) -> str:
    """The next free version number, owned by this caller alone."""
    versions = known_versions(store, name)
    number = parse_version(versions[-1]) + 1 if versions else 1
    record = json.dumps({"owner": owner, "at": datetime.now(UTC).isoformat()}).encode()
    for _ in range(MAX_CLAIM_TRIES):
        version = format_version(number)
        if store.put_if_absent(name.claim(version), record):
            return version
        number += 1
    raise IntegrityError(f"{name.versions.uri}: no free version after {MAX_CLAIM_TRIES} conditional writes")


# -- reading a version -----------------------------------------------------------------
@dataclass(frozen=True)
class StoredVersion:
    """A version folder with its manifest, as stored."""

    name: str
    version: str
    prefix: Location
    manifest: Manifest
    manifest_bytes: bytes
    """Exactly as stored, so a local copy carries the manifest it was verified against."""
    listed: tuple[str, ...] = ()
    """Every version with a folder beside it when this one was found, newest first."""

    @property
    def uri(self) -> str:
        return self.prefix.uri

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.manifest.files.values())

    def file(self, name: str) -> Location:
        return Location(self.prefix.bucket, self.prefix.key + check_relative_path(name))


def read_version(reader: ObjectReader, prefix: Location, kind: str = "model") -> StoredVersion:
    """The version at ``prefix`` (``.../<name>/vNNNNNN/``); NotFound without a manifest."""
    where = Location(prefix.bucket, prefix.key + MANIFEST)
    raw = reader.get_bytes(where, max_bytes=MAX_MANIFEST_BYTES)
    try:
        manifest = Manifest.from_bytes(raw, where.uri)
    except InvalidInput as exc:
        raise IntegrityError(str(exc)) from exc
    name, version = _name_and_version(prefix)
    if manifest.kind != kind or (name, version) != (manifest.name, manifest.version):
        raise IntegrityError(
            f"manifest {where.uri} describes {manifest.kind} {manifest.name} {manifest.version}, "
            f"not {kind} {name} {version}"
        )
    return StoredVersion(manifest.name, manifest.version, prefix, manifest, raw)


def complete_versions(reader: ObjectReader, folder: Location) -> list[str]:
    """Versions under ``folder`` whose manifest is written, oldest first (one listing)."""
    listed, complete = _scan(reader, folder)
    return [v for v in reversed(listed) if v in complete]


def newest_version(reader: ObjectReader, folder: Location, kind: str = "model") -> StoredVersion | None:
    """The newest version under ``folder`` whose manifest is written, found with one listing.

    A version without a manifest is still being written and is passed over; a newest
    version whose manifest is invalid is refused (IntegrityError), never skipped.
    """
    listed, complete = _scan(reader, folder)
    for version in listed:
        if version in complete:
            try:
                found = read_version(reader, Location(folder.bucket, f"{folder.key}{version}/"), kind)
            except NotFound:
                continue  # deleted since the listing (retention): as if never written
            if not found.manifest.files:
                raise IntegrityError(f"{found.uri}: the manifest of the newest version lists no files")
            return replace(found, listed=listed)
    return None


def _scan(reader: ObjectReader, folder: Location) -> tuple[tuple[str, ...], set[str]]:
    """(every version with a folder, newest first; those whose manifest is written)."""
    listed: set[str] = set()
    complete: set[str] = set()
    try:
        for obj in reader.list(folder):
            version = version_of_key(obj.location.key, folder.key)
            if version is not None:
                listed.add(version)
                if obj.location.key == f"{folder.key}{version}/{MANIFEST}":
                    complete.add(version)
    except NotFound:
        pass
    return tuple(sorted(listed, key=parse_version, reverse=True)), complete


def listed_versions(reader: ObjectReader, folder: Location) -> list[str]:
    """Versions with a folder under ``folder``, newest first (manifest not checked)."""
    try:
        keys = reader.list_prefixes(folder)
    except NotFound:
        return []
    return sorted(
        {v for key in keys if (v := version_of_key(key, folder.key))}, key=parse_version, reverse=True
    )


@dataclass(frozen=True)
class Fetched:
    version: StoredVersion
    path: Path | None
    """The verified local copy; None when the files were only verified, not kept."""
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.version.size / 1_048_576 / max(self.seconds, 1e-9)


def fetch_verified(reader: ObjectReader, stored: StoredVersion, dest: Path, workers: int = 8) -> Fetched:
    """Download every listed file into ``dest``, each checked against the manifest.

    Files land in a sibling ``.partial`` folder first, so ``dest`` only ever holds a
    complete, verified copy (its manifest beside it); a copy already there is
    re-verified, not downloaded again.
    """
    started = time.monotonic()
    if dest.is_dir():
        try:
            stored.manifest.verify_dir(dest)
            return Fetched(stored, dest, time.monotonic() - started)
        except IntegrityError:
            shutil.rmtree(dest)
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)

    def one(name: str) -> None:
        reader.download(stored.file(name), partial / name, expected_sha256=stored.manifest.files[name].sha256)

    try:
        _each(one, stored.manifest.files, workers)
        stored.manifest.verify_dir(partial)  # sizes, and files the manifest does not list
        (partial / MANIFEST).write_bytes(stored.manifest_bytes)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    partial.replace(dest)
    return Fetched(stored, dest, time.monotonic() - started)


def verify_remote(reader: ObjectReader, stored: StoredVersion, scratch: Path, workers: int = 8) -> Fetched:
    """Read every file of a stored version and check it, keeping nothing.

    For a target that fetches the version itself (KServe's storage initializer): small
    files are hashed in memory, large ones stream through ``scratch`` and are removed.
    """
    started = time.monotonic()

    def one(name: str) -> None:
        entry, loc = stored.manifest.files[name], stored.file(name)
        if entry.size <= IN_MEMORY_BYTES:
            try:
                data = reader.get_bytes(loc, expected_sha256=entry.sha256, max_bytes=entry.size)
            except PayloadTooLarge as exc:
                raise IntegrityError(f"{loc.uri}: larger than the manifest's {entry.size} bytes") from exc
            size = len(data)
        else:
            path = scratch / f"{uuid.uuid4().hex}.part"
            try:
                size = reader.download(loc, path, expected_sha256=entry.sha256).size
            finally:
                path.unlink(missing_ok=True)
        if size != entry.size:
            raise IntegrityError(f"{loc.uri}: {size} bytes, the manifest says {entry.size}")

    scratch.mkdir(parents=True, exist_ok=True)
    _each(one, stored.manifest.files, workers)
    return Fetched(stored, None, time.monotonic() - started)


def _each(one: Callable[[str], None], names: Iterable[str], workers: int) -> None:
    """``one`` for every file; a file listed but missing is an integrity failure of the version."""
    try:
        if workers <= 1:
            for name in sorted(names):
                one(name)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(one, sorted(names)))
    except NotFound as exc:
        raise IntegrityError(f"a file the manifest lists is missing: {exc}") from exc


# -- writing a version -----------------------------------------------------------------
def publish_model(
    store: ObjectStorage, layout: Layout, export_dir: Path, owner: str, workers: int = 4
) -> Manifest:
    """Register an exported model folder as the model's next version: files first, manifest last."""
    exported = Manifest.from_bytes((export_dir / MANIFEST).read_bytes(), str(export_dir / MANIFEST))
    exported.verify_dir(export_dir)
    store.ensure_bucket(layout.models_bucket)
    version = claim_next_version(store, layout.model_versions(exported.name), owner)
    manifest = exported.model_copy(update={"version": version})
    prefix = layout.model_prefix(manifest.name, version)

    def upload(name: str) -> None:
        store.put_file(Location(prefix.bucket, prefix.key + name), export_dir / name)

    _each(upload, manifest.files, workers)
    store.put_bytes(Location(prefix.bucket, prefix.key + MANIFEST), manifest.to_bytes(), "application/json")
    return manifest


# -- the serving pointer ---------------------------------------------------------------
def read_pointer(reader: ObjectReader, layout: Layout, edge: str, model: str) -> ModelPointer | None:
    """Which version the edge's model server should serve; None for an edge that serves nothing yet."""
    loc = layout.edge_model_pointer(edge, model)
    try:
        raw = reader.get_bytes(loc, max_bytes=MAX_POINTER_BYTES)
    except NotFound:
        return None
    pointer = ModelPointer.from_bytes(raw, loc.uri)
    if pointer.model != model:
        raise IntegrityError(f"{loc.uri} points at model {pointer.model}, not {model}")
    return pointer


def write_pointer(writer: ObjectWriter, layout: Layout, edge: str, pointer: ModelPointer) -> None:
    writer.put_bytes(layout.edge_model_pointer(edge, pointer.model), pointer.to_bytes(), "application/json")


def _name_and_version(prefix: Location) -> tuple[str, str]:
    parts = prefix.key.rstrip("/").split("/")
    if len(parts) < 2:
        raise InvalidInput(f"{prefix.uri} is not a version folder (…/<name>/vNNNNNN/)")
    parse_version(parts[-1])
    return parts[-2], parts[-1]
