"""What every S3 transport shares: a stored object, the reader and writer interfaces, one verify.

Every object edgecore writes carries its sha256 in the ``x-amz-meta-sha256`` metadata,
computed while the bytes stream through; every read recomputes it and refuses bytes that
match neither that record nor the digest the caller expects (from a manifest).
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from foundation.errors import IntegrityError
from foundation.layout import Location

SHA256_META = "sha256"
"""The user metadata key holding an object's sha256 (``x-amz-meta-sha256``)."""
CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredObject:
    location: Location
    sha256: str
    """Empty where the answer did not carry it (a listing)."""
    size: int


class ObjectReader(Protocol):
    """Reads, each verified: the boto3 store and the signed wire reader both offer them."""

    def list(self, prefix: Location, recursive: bool = True) -> Iterator[StoredObject]: ...

    def list_prefixes(self, prefix: Location) -> builtins.list[str]: ...

    def get_bytes(
        self, loc: Location, expected_sha256: str | None = None, max_bytes: int | None = None
    ) -> bytes: ...

    def download(self, loc: Location, dest: Path, expected_sha256: str | None = None) -> StoredObject: ...

    def download_range(
        self, loc: Location, offset: int, size: int, dest: Path, expected_sha256: str
    ) -> StoredObject: ...


class ObjectWriter(Protocol):
    """Writes, each recording the object's sha256."""

    def ensure_bucket(self, bucket: str) -> None: ...

    def put_bytes(
        self, loc: Location, data: bytes, content_type: str = "application/octet-stream"
    ) -> StoredObject: ...

    def put_file(
        self, loc: Location, path: Path, content_type: str = "application/octet-stream"
    ) -> StoredObject: ...

    def put_if_absent(self, loc: Location, data: bytes, content_type: str = "application/json") -> bool: ...

    def copy(self, src: Location, dst: Location) -> None: ...

    def delete(self, loc: Location) -> None: ...


class ObjectStorage(ObjectReader, ObjectWriter, Protocol):
    """Both: what claims a version number or publishes one."""


def file_sha256(path: Path) -> tuple[str, int]:
    """A file's sha256 and size, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def slice_check(
    loc: Location, offset: int, size: int, expected_sha256: str
) -> Callable[[str | None, str, int], None]:
    """The check of ``size`` bytes at ``offset`` of an object (a member of a shard): its size and the
    caller's sha256 (from a manifest), since the object's recorded digest does not describe a slice."""
    where = Location(loc.bucket, f"{loc.key}[{offset}:{offset + size}]")

    def check(_: str | None, sha: str, got: int) -> None:
        verify_size(where, got, size)
        verify(where, sha, None, expected_sha256)

    return check


def verify(loc: Location, actual: str, recorded: str | None, expected: str | None) -> None:
    """Refuse bytes whose sha256 differs from the recorded or the expected one."""
    for what, want in (("recorded", recorded), ("expected", expected)):
        if want and want != actual:
            raise IntegrityError(f"{loc.uri}: sha256 {actual[:12]}… does not match the {what} {want[:12]}…")


def verify_size(loc: Location, got: int, size: int) -> None:
    if got != size:
        raise IntegrityError(f"{loc.uri}: {got} bytes read, {size} expected (object truncated?)")


def write_verified(
    dest: Path,
    fill: Callable[[Callable[[bytes], object]], str | None],
    check: Callable[[str | None, str, int], None],
) -> tuple[str, int]:
    """Stream an object into ``dest`` through a ``.part`` file, hashing it on the way.

    ``fill(sink)`` passes the body to ``sink`` chunk by chunk and returns the object's
    recorded sha256; ``check(recorded, sha256, size)`` must pass before the file takes
    its name, so ``dest`` only ever holds verified bytes.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    size = 0
    try:
        with tmp.open("wb") as out:

            def sink(chunk: bytes) -> None:
                nonlocal size
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)

            recorded = fill(sink)
        check(recorded, digest.hexdigest(), size)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(dest)
    return digest.hexdigest(), size
