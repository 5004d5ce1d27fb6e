"""The set archive: a plain tar of ``<SKU>/<image-id>.<ext>`` images, read strictly.

The receiver takes tars from the network, so it does not use :mod:`tarfile` to read
them: in stream mode ``tarfile`` reads pax and GNU long-name headers of any declared size
into memory and accepts links, devices and absolute names.  :class:`TarReader` is a
push parser (feed it bytes as they arrive) that understands exactly what the shipper
writes (ustar, plus bounded pax records) and refuses everything else with an error
whose class is the HTTP answer: :class:`PayloadTooLarge` (413) for size and count
bounds, :class:`UnsupportedMedia` (415) for non-images, :class:`InvalidInput` (400)
for unsafe names, links, devices and corrupt headers.  Memory stays bounded by one
member (``max_member_bytes``) plus one network chunk.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from foundation.errors import InvalidInput, PayloadTooLarge, UnsupportedMedia
from foundation.layout import check_extension, check_image_id, check_sku

BLOCK = 512
DIGEST_HEADER = "x-edgecore-set-digest"
"""HTTP header carrying :func:`set_digest` of the shipped set."""
MAX_PAX_BYTES = 16 * 1024
REGULAR = (b"0", b"\0", b"7")
DIRECTORY = b"5"
PAX = (b"x", b"g")
_REFUSED = {
    b"1": "hard link",
    b"2": "symbolic link",
    b"3": "character device",
    b"4": "block device",
    b"6": "FIFO",
    b"L": "GNU long name",
    b"K": "GNU long link",
    b"S": "sparse file",
}


@dataclass(frozen=True)
class Limits:
    max_members: int
    max_member_bytes: int
    max_total_bytes: int


@dataclass(frozen=True)
class Member:
    """One image of a set: its label, its name on the edge and its bytes."""

    sku: str
    image_id: str
    ext: str
    data: bytes

    @property
    def name(self) -> str:
        return f"{self.sku}/{self.image_id}.{self.ext}"


def check_member_name(name: str) -> tuple[str, str, str]:
    """``<SKU>/<image-id>.<ext>``, nothing else: no absolute paths, dot segments or nesting."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        raise InvalidInput(f"unsafe member name {name!r}: absolute or with forbidden characters")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"unsafe member name {name!r}: empty or dot segment (path traversal)")
    if len(parts) != 2:
        raise InvalidInput(f"member {name!r} is not <SKU>/<image-id>.<ext>")
    sku, filename = parts
    stem, dot, ext = filename.rpartition(".")
    if not dot:
        raise UnsupportedMedia(f"member {name!r} has no image extension")
    try:
        ext = check_extension(ext)
    except InvalidInput as exc:
        raise UnsupportedMedia(f"member {name!r}: {exc}") from exc
    return check_sku(sku), check_image_id(stem), ext


def _octal(field: bytes, what: str) -> int:
    text = field.rstrip(b"\0 ").strip()
    if not text:
        return 0
    if field[:1] in (b"\x80", b"\xff"):
        raise InvalidInput(f"tar header: base-256 {what} is not supported")
    try:
        return int(text, 8)
    except ValueError as exc:
        raise InvalidInput(f"tar header: {what} field {field!r} is not octal") from exc


def _checksum_ok(header: bytes) -> bool:
    recorded = _octal(header[148:156], "checksum")
    unsigned = sum(header[:148]) + 8 * 32 + sum(header[156:])
    signed = (
        sum(b - 256 if b > 127 else b for b in header[:148])
        + 8 * 32
        + sum(b - 256 if b > 127 else b for b in header[156:])
    )
    return recorded in (unsigned, signed)


def _parse_pax(data: bytes) -> dict[str, str]:
    """``<len> <key>=<value>\\n`` records; a malformed record is an error, not ignored."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            raise InvalidInput("tar pax header: record without length")
        try:
            length = int(data[pos:space])
        except ValueError as exc:
            raise InvalidInput("tar pax header: bad record length") from exc
        end = pos + length
        if length <= 0 or end > len(data) or data[end - 1 : end] != b"\n":
            raise InvalidInput("tar pax header: record length out of bounds")
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq:
            raise InvalidInput("tar pax header: record without '='")
        try:
            records[key.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("tar pax header: not UTF-8") from exc
        pos = end
    return records


class TarReader:
    """Push parser: ``feed(chunk)`` returns the images completed by that chunk."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.members = 0
        self.total_bytes = 0
        self.finished = False
        # Received chunks, not yet parsed: joined only for what a step needs, so an image
        # is copied once (growing one bytearray copies it again at every reallocation).
        self._chunks: deque[memoryview] = deque()
        self._avail = 0
        self._pax: dict[str, str] = {}
        self._state = "header"  # header | pax | data | end
        self._need = BLOCK
        self._current: tuple[str, str, str] | None = None
        self._size = 0
        self._zero_blocks = 0
        self._pax_kind = b"x"

    def feed(self, chunk: bytes) -> list[Member]:
        out: list[Member] = []
        if self.finished:
            if chunk.strip(b"\0"):
                raise InvalidInput("data after the end-of-archive marker")
            return out
        if chunk:
            self._chunks.append(memoryview(bytes(chunk)))
            self._avail += len(chunk)
        while self._avail >= self._need and not self.finished:
            if self._state == "data":  # an image: its bytes, then the padding, dropped
                data = self._take(self._size)
                self._take(self._need - self._size)
                out.append(self._member(data))
                continue
            self._step(self._take(self._need))
        if self.finished and any(bytes(c).strip(b"\0") for c in self._chunks):
            raise InvalidInput("data after the end-of-archive marker")
        return out

    def close(self) -> None:
        """The stream ended: it must have ended on the end-of-archive marker."""
        if not self.finished and not (self._state == "header" and self._zero_blocks == 1 and not self._avail):
            raise InvalidInput("truncated archive: the stream ended inside a member or header")
        if self.members == 0:
            raise InvalidInput("empty archive: a set holds at least one image")

    def _take(self, n: int) -> bytes:
        """The next ``n`` buffered bytes (the caller checked that they are there)."""
        parts: list[memoryview] = []
        while n:
            head = self._chunks[0]
            if len(head) <= n:
                parts.append(self._chunks.popleft())
                n -= len(head)
                self._avail -= len(head)
            else:
                parts.append(head[:n])
                self._chunks[0] = head[n:]
                self._avail -= n
                n = 0
        return bytes(parts[0]) if len(parts) == 1 else b"".join(parts)

    # -- states ------------------------------------------------------------------------
    def _step(self, block: bytes) -> None:
        if self._state == "header":
            self._header(block)
            return
        # pax
        self._pax = _parse_pax(block[: self._size]) if self._pax_kind == b"x" else {}
        self._set_state("header", BLOCK)

    def _member(self, data: bytes) -> Member:
        assert self._current is not None
        sku, image_id, ext = self._current
        self._current = None
        self._set_state("header", BLOCK)
        return Member(sku, image_id, ext, data)

    def _set_state(self, state: str, need: int) -> None:
        self._state = state
        self._need = need

    def _header(self, block: bytes) -> None:
        if block == b"\0" * BLOCK:
            self._zero_blocks += 1
            if self._zero_blocks == 2:
                self.finished = True
            return
        if self._zero_blocks:
            raise InvalidInput("tar: a lone zero block inside the archive")
        if not _checksum_ok(block):
            raise InvalidInput("tar header checksum mismatch (not a tar, or corrupt)")
        kind = block[156:157]
        size = _octal(block[124:136], "size")
        if kind in PAX:
            if size > MAX_PAX_BYTES:
                raise PayloadTooLarge(f"tar pax header of {size} bytes exceeds {MAX_PAX_BYTES}")
            self._pax_kind = kind
            self._size = size
            if size:
                self._set_state("pax", _padded(size))
            return
        pax, self._pax = self._pax, {}
        name = pax.get("path") or _ustar_name(block)
        if kind in _REFUSED:
            raise InvalidInput(f"member {name!r} is a {_REFUSED[kind]}: only regular image files are allowed")
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError as exc:
                raise InvalidInput(f"member {name!r}: pax size is not a number") from exc
        self.members += 1
        if self.members > self.limits.max_members:
            raise PayloadTooLarge(f"archive holds more than {self.limits.max_members} members")
        if kind == DIRECTORY:
            if size or not name.endswith("/"):
                raise InvalidInput(f"directory member {name!r} is malformed")
            check_sku(name.rstrip("/"))
            self.members -= 1
            return
        if kind not in REGULAR:
            raise InvalidInput(f"member {name!r} has unsupported type {kind!r}")
        self._current = check_member_name(name)
        if size > self.limits.max_member_bytes:
            raise PayloadTooLarge(
                f"member {name!r} declares {size} bytes, over the {self.limits.max_member_bytes}-byte limit"
            )
        self.total_bytes += size
        if self.total_bytes > self.limits.max_total_bytes:
            raise PayloadTooLarge(f"archive declares more than {self.limits.max_total_bytes} bytes in total")
        if size == 0:
            raise UnsupportedMedia(f"member {name!r} is empty, not an image")
        self._size = size
        self._set_state("data", _padded(size))


def _padded(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK


def _ustar_name(block: bytes) -> str:
    name = block[0:100].split(b"\0", 1)[0]
    if block[257:262] == b"ustar":
        prefix = block[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"member name {name!r} is not UTF-8") from exc


# -- writing (the shipper's side) -----------------------------------------------------
def member_header(name: str, size: int, mtime: float = 0) -> bytes:
    """The 512-byte ustar header of one regular file (names are short by construction)."""
    check_member_name(name)
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o644
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def shard_member_header(path: str, size: int) -> bytes:
    """The ustar header of a dataset shard's member, named by its path in the dataset.

    ``images/<SKU>/<sha256>.<ext>`` is longer than ustar's 100-byte name field, so
    ``tarfile`` puts the folders in the 155-byte prefix field: still plain ustar.
    """
    info = tarfile.TarInfo(path)
    info.size = size
    info.mode = 0o644
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def padding(size: int) -> bytes:
    return b"\0" * (_padded(size) - size)


def member_span(size: int) -> int:
    """Bytes one regular member of ``size`` bytes takes in a tar: its header, data and padding."""
    return BLOCK + _padded(size)


END_OF_ARCHIVE = b"\0" * (2 * BLOCK)


def set_digest(files: Iterable[str]) -> str:
    """The content digest of a set: sha256 of its sorted, content-addressed dataset paths.

    Paths are ``images/<SKU>/<sha256>.<ext>``, so two sets have the same digest exactly
    when they hold the same images under the same labels, whatever their names on the edge.
    """
    return hashlib.sha256("\n".join(sorted(set(files))).encode()).hexdigest()


def dataset_path(sku: str, sha256: str, ext: str) -> str:
    """A file's path inside a dataset version (as its manifest lists it)."""
    return f"images/{sku}/{sha256}.{ext}"
