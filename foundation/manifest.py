"""Manifests of immutable datasets and model versions.

A version exists once its manifest does: writers upload every file first and the
manifest last, readers trust nothing the manifest does not list and verify each file's
sha256 against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from foundation.errors import IntegrityError, InvalidInput
from foundation.layout import check_relative_path
from foundation.storage.objects import file_sha256

MANIFEST_SCHEMA_VERSION = 1
_CHUNK = 1 << 20


class FileEntry(BaseModel):
    """One file of a version: its digest and size, and, for a packed dataset, where it lies.

    A dataset shipped by an edge is stored as one tar shard (one multipart upload is far
    cheaper than an S3 PUT per image); ``shard`` is then the shard's path inside the
    version and ``offset`` where the file's bytes start in it.  A file without ``shard``
    is its own object at its path.
    """

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    shard: str | None = None
    offset: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _shard_and_offset_together(self) -> FileEntry:
        if (self.shard is None) != (self.offset is None):
            raise ValueError("a packed file needs both shard and offset")
        if self.shard is not None:
            check_relative_path(self.shard)
        return self

    @model_serializer(mode="wrap")
    def _without_unpacked_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Per-object files keep the manifest shape they always had.
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None or k not in ("shard", "offset")}


class Manifest(BaseModel):
    """What a dataset or model version holds: every file's sha256, and its metadata."""

    schema_version: int = MANIFEST_SCHEMA_VERSION
    kind: Literal["dataset", "model"]
    name: str
    version: str
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    files: dict[str, FileEntry]
    labels: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> Manifest:
        try:
            manifest = cls.model_validate_json(raw)
        except ValidationError as exc:
            raise InvalidInput(f"manifest {where} is invalid: {exc.errors()[0]['msg']}") from exc
        for name in manifest.files:
            check_relative_path(name)
        return manifest

    @property
    def sha256(self) -> str:
        """Digest of the manifest itself, as events carry it."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def verify_dir(self, root: Path, digests: bool = True) -> None:
        """Check that ``root`` holds every listed file at its listed size (and sha256, with ``digests``)."""
        for name, entry in self.files.items():
            path = root / name
            if not path.is_file():
                raise IntegrityError(f"{self.kind} {self.name} {self.version}: {name} is missing")
            if not digests:
                size = path.stat().st_size
                if size != entry.size:
                    where = f"{self.kind} {self.name} {self.version}: {name}"
                    raise IntegrityError(f"{where} has {size} bytes, manifest says {entry.size}")
                continue
            digest, size = file_sha256(path)
            if size != entry.size or digest != entry.sha256:
                raise IntegrityError(
                    f"{self.kind} {self.name} {self.version}: {name} has sha256 {digest[:12]}… "
                    f"({size} bytes), manifest says {entry.sha256[:12]}… ({entry.size} bytes)"
                )


def entries_for_dir(root: Path, skip: Iterable[str] = ("manifest.json",)) -> dict[str, FileEntry]:
    """sha256 and size of every file under ``root``, keyed by relative POSIX path."""
    skipped = set(skip)
    files: dict[str, FileEntry] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in skipped:
            continue
        digest, size = file_sha256(path)
        files[rel] = FileEntry(sha256=digest, size=size)
    return files
