"""A small client of the OCI distribution API: what modelcars need, pushed and pulled over TLS.

Models travel as OCI images (KServe's modelcars, ``oci://`` storage URIs).  Pushing and
pulling them needs no container engine: a publish step in a pipeline pod and an edge's
controller speak the registry's HTTP API through one ``httpx.Client``, which carries the
TLS trust, the client certificate (the core's registry) or the edge's login (the front
door).  Every blob and manifest read is checked against the digest that named it, and
reads are bounded (a manifest by ``MAX_MANIFEST_BYTES``, a blob by the size its manifest
gives), so a registry or a proxy in between cannot hand over other bytes or unbounded ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from foundation.errors import (
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
MAX_MANIFEST_BYTES = 4 * 1_048_576
_REFERENCE = re.compile(
    r"(?P<registry>[A-Za-z0-9.\-]+(?::[0-9]+)?)/(?P<repository>[a-z0-9]+(?:[._\-/][a-z0-9]+)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._\-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Reference:
    """``registry/repository[:tag][@digest]``; the digest, when there is one, is what is fetched."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        found = _REFERENCE.fullmatch(text.removeprefix("oci://"))
        if found is None or (found["tag"] is None and found["digest"] is None):
            raise InvalidInput(
                f"{text[:200]!r} is not an image reference (registry/repository:tag or @sha256:…)"
            )
        return cls(found["registry"], found["repository"], found["tag"], found["digest"])

    @property
    def reference(self) -> str:
        return self.digest or self.tag or ""

    def pinned(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        tail = f"@{self.digest}" if self.digest else f":{self.tag}"
        return f"{self.registry}/{self.repository}{tail}"


def sha256_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class Registry:
    """One registry's API through ``client`` (its TLS trust, certificate or login already set)."""

    def __init__(self, client: httpx.Client, scheme: str = "https") -> None:
        self._client = client
        self._scheme = scheme

    def _url(self, ref: Reference, tail: str) -> str:
        return f"{self._scheme}://{ref.registry}/v2/{ref.repository}/{tail}"

    def manifest_bytes(self, ref: Reference) -> tuple[bytes, str]:
        """The bytes of the manifest ``ref`` names and their digest (checked against ``ref``'s); read
        no further than ``MAX_MANIFEST_BYTES``."""
        url = self._url(ref, f"manifests/{ref.reference}")
        raw = bytearray()
        try:
            with self._client.stream(
                "GET", url, headers={"Accept": MANIFEST_TYPE}, timeout=httpx.Timeout(60.0, connect=10.0)
            ) as response:
                if response.status_code != 200:
                    response.read()
                    _raise_for(response, url)
                for chunk in response.iter_bytes(1 << 16):
                    raw += chunk
                    if len(raw) > MAX_MANIFEST_BYTES:
                        raise IntegrityError(f"{ref}: manifest over {MAX_MANIFEST_BYTES} bytes")
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"registry {ref.registry}: {exc}") from exc
        digest = sha256_digest(bytes(raw))
        if ref.digest is not None and digest != ref.digest:
            raise IntegrityError(f"{ref}: the registry answered a manifest with digest {digest[:19]}…")
        return bytes(raw), digest

    def manifest(self, ref: Reference) -> tuple[dict[str, Any], str]:
        """The single-platform image manifest ``ref`` names, and its digest."""
        raw, digest = self.manifest_bytes(ref)
        try:
            manifest: dict[str, Any] = json.loads(raw)
        except ValueError as exc:
            raise IntegrityError(f"{ref}: the manifest is not JSON") from exc
        if manifest.get("mediaType", MANIFEST_TYPE) != MANIFEST_TYPE or not isinstance(
            manifest.get("layers"), list
        ):
            raise InvalidInput(f"{ref} is not a single-platform OCI image manifest")
        return manifest, digest

    def resolve(self, ref: Reference) -> Reference:
        """``ref`` pinned to the digest its tag names now (a digest names the same bytes for ever)."""
        if ref.digest is not None:
            return ref
        return ref.pinned(self.manifest(ref)[1])

    def blob(self, ref: Reference, digest: str, size: int, sink: Callable[[bytes], object]) -> None:
        """Blob ``digest`` of ``ref``'s repository into ``sink``; refused unless it is exactly ``size``
        bytes with that digest (checked as it arrives, so an oversized blob is cut off)."""
        for chunk in self.blob_chunks(ref, digest, size):
            sink(chunk)

    def blob_chunks(self, ref: Reference, digest: str, size: int | None = None) -> Iterator[bytes]:
        """Blob ``digest`` as it arrives; raises at the end (or past ``size``) unless it is those bytes."""
        if not _DIGEST.fullmatch(digest):
            raise InvalidInput(f"{digest[:80]!r} is not a sha256 digest")
        hasher, got = hashlib.sha256(), 0
        url = self._url(ref, f"blobs/{digest}")
        try:
            with self._client.stream("GET", url, timeout=httpx.Timeout(300.0, connect=10.0)) as response:
                if response.status_code != 200:
                    response.read()
                    _raise_for(response, url)
                for chunk in response.iter_bytes(1 << 20):
                    got += len(chunk)
                    if size is not None and got > size:
                        raise IntegrityError(f"{ref}: blob {digest[:19]}… is larger than its {size} bytes")
                    hasher.update(chunk)
                    yield chunk
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"registry {ref.registry}: {exc}") from exc
        if (size is not None and got != size) or f"sha256:{hasher.hexdigest()}" != digest:
            raise IntegrityError(f"{ref}: blob {digest[:19]}… arrived as {got} bytes of another digest")

    def blob_size(self, ref: Reference, digest: str) -> int:
        """The size of blob ``digest`` in ``ref``'s repository (NotFound where it has none)."""
        if not _DIGEST.fullmatch(digest):
            raise InvalidInput(f"{digest[:80]!r} is not a sha256 digest")
        response = self._call("HEAD", self._url(ref, f"blobs/{digest}"))
        return int(response.headers.get("content-length", "0"))

    def has_blob(self, ref: Reference, digest: str) -> bool:
        response = self._call("HEAD", self._url(ref, f"blobs/{digest}"), missing_ok=True)
        return response.status_code == 200

    def push_blob(self, ref: Reference, digest: str, source: Path | bytes) -> None:
        """Upload a blob unless the repository has it (one monolithic upload: POST, then PUT)."""
        if self.has_blob(ref, digest):
            return
        self._upload(ref, digest, source, self._call("POST", self._url(ref, "blobs/uploads/")))

    def _upload(self, ref: Reference, digest: str, source: Path | bytes, started: httpx.Response) -> None:
        """Finish the upload session ``started`` opened with the whole blob."""
        location = started.headers.get("location")
        if not location:
            raise ServiceUnavailable(f"registry {ref.registry} gave no upload location")
        if location.startswith("/"):
            location = f"{self._scheme}://{ref.registry}{location}"
        target = httpx.URL(location).copy_merge_params({"digest": digest})  # the location keeps its own query
        size = source.stat().st_size if isinstance(source, Path) else len(source)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        body = (
            _chunks(source) if isinstance(source, Path) else source
        )  # a model's layer is not held in memory
        self._call("PUT", str(target), content=body, headers=headers)

    def mount_blob(self, ref: Reference, digest: str, source: Reference) -> None:
        """Make blob ``digest`` of ``source``'s repository one of ``ref``'s: mounted where both are in one
        registry (no bytes move), else copied (the small base layer of a modelcar, in memory).  A
        registry that will not mount opens an upload session instead (202): the copy goes there,
        rather than leaving it open until the registry expires it."""
        if self.has_blob(ref, digest):
            return
        started = None
        if source.registry == ref.registry:
            params = {"mount": digest, "from": source.repository}
            started = self._call("POST", self._url(ref, "blobs/uploads/"), params=params)
            if started.status_code == 201:
                return
        data = bytearray()
        manifest, _ = self.manifest(source)
        sizes = {entry["digest"]: int(entry["size"]) for entry in [manifest["config"], *manifest["layers"]]}
        if digest not in sizes:
            raise NotFound(f"{source} has no blob {digest[:19]}…")
        self.blob(source, digest, sizes[digest], data.extend)
        if started is None or not started.headers.get("location"):
            started = self._call("POST", self._url(ref, "blobs/uploads/"))
        self._upload(ref, digest, bytes(data), started)

    def push_manifest(self, ref: Reference, raw: bytes) -> Reference:
        """Put an image manifest under ``ref``'s tag; ``ref`` pinned to its digest."""
        self._call(
            "PUT",
            self._url(ref, f"manifests/{ref.reference}"),
            content=raw,
            headers={"Content-Type": MANIFEST_TYPE},
        )
        return ref.pinned(sha256_digest(raw))

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, url: str, missing_ok: bool = False, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, url, timeout=httpx.Timeout(120.0, connect=10.0), **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"registry {url.split('/v2/')[0]}: {exc}") from exc
        if response.status_code >= 300 and not (missing_ok and response.status_code == 404):
            _raise_for(response, url)
        return response


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk


def _raise_for(response: httpx.Response, url: str) -> None:
    reason = response.text[:300]
    status = response.status_code
    if status == 401:
        raise Unauthorized(f"registry refused the login at {url}: {reason}")
    if status == 403:
        raise Forbidden(f"registry {url}: {reason}")
    if status == 404:
        raise NotFound(f"registry has nothing at {url}")
    if status >= 500 or status in (408, 429):
        raise ServiceUnavailable(f"registry {url} answered {status}: {reason}")
    raise InvalidInput(f"registry {url} answered {status}: {reason}")
