"""The edge side of model delivery: pull the newest version through the front door into the edge's storage.

The edge opens every connection (stores sit behind NAT) and holds the only credential
to its own storage; the core holds none.  A pull asks the front door for the newest
version of the edge's model, and copies any file the edge bucket lacks, each checked
against the manifest's sha256 and size as it arrives, the manifest last: from then on
the sync controller treats the copy as any delivered version (it verifies it again
before a rollout).  Pulling a version already complete at the edge does nothing.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from foundation.edge_report import EdgeReport
from foundation.errors import Forbidden, IntegrityError, InvalidInput, ServiceUnavailable, Unauthorized
from foundation.layout import MANIFEST, Layout, parse_version
from foundation.manifest import Manifest
from foundation.registry import newest_version
from foundation.storage.objects import ObjectStorage

log = logging.getLogger(__name__)
MAX_MANIFEST_BYTES = 16 * 1_048_576


class DoorClient:
    """One edge's client of the front door: TLS checked against the settings' CA, its token sent."""

    def __init__(self, url: str, edge: str, client: httpx.Client) -> None:
        self.base = f"{url.rstrip('/')}/v1/edges/{edge}"
        self.edge = edge
        self._client = client

    def newest(
        self, model: str, after: str | None = None, wait_s: float = 0.0, expect: str | None = None
    ) -> Manifest | None:
        """The newest version's manifest (newer than ``after``); None when there is none (yet).
        ``expect``: the version an event named, so the door looks again at once."""
        params: dict[str, str | float] = {"wait": wait_s}
        if after is not None:
            params["after"] = after
        if expect is not None:
            params["expect"] = expect
        response = self._get(f"{self.base}/models/{model}/newest", params, timeout=wait_s + 30.0)
        if response.status_code == 204:
            return None
        if len(response.content) > MAX_MANIFEST_BYTES:
            raise IntegrityError(f"the front door's manifest of {model} is over {MAX_MANIFEST_BYTES} bytes")
        return Manifest.from_bytes(response.content, f"front door: {model}")

    def download(self, model: str, version: str, name: str, sink: Callable[[bytes], object]) -> None:
        url = f"{self.base}/models/{model}/versions/{version}/files/{name}"
        try:
            with self._client.stream("GET", url, timeout=httpx.Timeout(300.0, connect=10.0)) as response:
                if response.status_code != 200:
                    response.read()
                    _raise_for(response, url)
                for chunk in response.iter_bytes(1 << 20):
                    sink(chunk)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"front door {url}: {exc}") from exc

    def report(self, report: EdgeReport) -> None:
        """Send this edge's report (``edge_sync.delivery.reporter``)."""
        url = f"{self.base}/report"
        try:
            response = self._client.put(
                url,
                content=report.to_bytes(),
                headers={"Content-Type": "application/json"},
                timeout=httpx.Timeout(30.0, connect=10.0),
            )
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"front door {url}: {exc}") from exc
        if response.status_code != 204:
            _raise_for(response, url)

    def close(self) -> None:
        self._client.close()

    def _get(self, url: str, params: dict[str, str | float], timeout: float) -> httpx.Response:
        try:
            response = self._client.get(url, params=params, timeout=httpx.Timeout(timeout, connect=10.0))
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"front door {url}: {exc}") from exc
        if response.status_code not in (200, 204):
            _raise_for(response, url)
        return response


def _raise_for(response: httpx.Response, url: str) -> None:
    reason = response.text[:300]
    if response.status_code == 401:
        raise Unauthorized(f"front door refused this edge's token: {reason}")
    if response.status_code == 403:
        raise Forbidden(f"front door: {reason}")
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise ServiceUnavailable(f"front door {url} answered {response.status_code}: {reason}")
    raise InvalidInput(f"front door {url} answered {response.status_code}: {reason}")


EXPECT_WAIT_S = 5.0
"""How long the door may hold the pull of a version an event named before it is seen in the registry."""


class Puller:
    """Copies the newest version of an edge's model from the front door into the edge bucket.

    With ``keep`` (the controller's work folder), a version pulled whole is also left there
    verified, where the controller's own fetch finds it and only re-hashes it: the files
    cross the site's storage once, not twice.
    """

    def __init__(
        self, door: DoorClient, store: ObjectStorage, layout: Layout, scratch: Path, keep: Path | None = None
    ) -> None:
        self.door = door
        self.store = store
        self.layout = layout
        self.scratch = scratch
        self.keep = keep
        self._copying = threading.Lock()

    def pull(
        self, model: str, wait_s: float = 0.0, expect: str | None = None, keep: bool = True
    ) -> str | None:
        """The version now complete in the edge bucket that was not before, or None.
        ``keep``: leave it verified in the controller's folder too (not for a model it does not serve).

        The long poll and an event may both learn of a version: one copies it, the other
        finds it complete and returns None (the question to the door is not serialised, so a
        long poll held open never delays an event's pull).
        """
        edge = self.door.edge
        here = newest_version(self.store, self.layout.edge_models_prefix(edge, model))
        if expect is not None:
            if here is not None and parse_version(here.version) >= parse_version(expect):
                return None  # an event of a version this site holds already (a replay, or the long poll's)
            wait_s = max(wait_s, EXPECT_WAIT_S)
        manifest = self.door.newest(model, after=here.version if here else None, wait_s=wait_s, expect=expect)
        if manifest is None or manifest.name != model:
            return None
        with self._copying:
            return self._complete(model, manifest, self.keep if keep else None)

    def _complete(self, model: str, manifest: Manifest, keep: Path | None) -> str | None:
        edge = self.door.edge
        here = newest_version(self.store, self.layout.edge_models_prefix(edge, model))
        if here is not None and parse_version(here.version) >= parse_version(manifest.version):
            return None
        prefix = self.layout.edge_model_prefix(edge, model, manifest.version)
        present = {o.location.key[len(prefix.key) :]: o.size for o in self.store.list(prefix)}
        self.scratch.mkdir(parents=True, exist_ok=True)
        kept = None
        if keep is not None and not present:  # a pull resumed has part of it in the bucket only
            kept = self.scratch / f"{edge}-{model}-{manifest.version}"  # staged apart from the controller's
            shutil.rmtree(kept, ignore_errors=True)
        for name, entry in sorted(manifest.files.items()):
            if present.get(name) != entry.size:
                self._copy(model, manifest, name, kept)
        raw = manifest.to_bytes()
        if kept is not None and keep is not None:  # in place before the bucket says it is complete
            (kept / MANIFEST).write_bytes(raw)
            whole = keep / edge / model / manifest.version
            shutil.rmtree(whole, ignore_errors=True)
            whole.parent.mkdir(parents=True, exist_ok=True)
            kept.replace(whole)
        self.store.put_bytes(prefix.child(MANIFEST), raw, "application/json")
        log.info("edge %s: pulled %s %s (%d files)", edge, model, manifest.version, len(manifest.files))
        return manifest.version

    def _copy(self, model: str, manifest: Manifest, name: str, kept: Path | None) -> None:
        """One file from the door, checked against the manifest, into the edge bucket (and ``kept``)."""
        entry = manifest.files[name]
        digest = hashlib.sha256()
        if kept is not None:
            path = kept / name
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            path = Path(tempfile.mkstemp(dir=self.scratch, suffix=".part")[1])
        try:
            with path.open("wb") as part:

                def sink(chunk: bytes) -> None:
                    digest.update(chunk)
                    part.write(chunk)

                self.door.download(model, manifest.version, name, sink)
                size = part.tell()
            if size != entry.size or digest.hexdigest() != entry.sha256:
                raise IntegrityError(
                    f"{model} {manifest.version}/{name} from the front door: {size} bytes, sha256 "
                    f"{digest.hexdigest()[:12]}…; the manifest says {entry.size} bytes, {entry.sha256[:12]}…"
                )
            prefix = self.layout.edge_model_prefix(self.door.edge, model, manifest.version)
            self.store.put_file(prefix.child(name), path)
        finally:
            if kept is None:
                path.unlink(missing_ok=True)
