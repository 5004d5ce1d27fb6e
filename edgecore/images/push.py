"""Pushing built images to a registry and remembering the digests it answered.

The digest, not the tag, is what the pipeline and the overlays are pinned to: a tag can be
pushed again, a digest names these bytes for ever.  Each registry has its own record,
because a push recompresses and another registry may answer another digest: the stack's
lives with its data (``<state_dir>/registry/pushed.json``), so a fresh registry never
leaves pins to images it no longer holds; a cluster's registry (``--registry``, after
``podman login``) has one under ``<state_dir>/images/``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from edgecore.images.podman import Podman
from edgecore.stack.registry import RegistryService
from edgecore.stack.tools import StackError
from foundation.images import TAG


@dataclass(frozen=True)
class Destination:
    """Where images are pushed: ``<address>/edgecore-<name>``, and the record of its digests."""

    address: str
    """``host[:port][/path]``, e.g. ``registry.example.com/platform``."""
    record: Path
    cert_dir: Path | None = None
    """podman's ``--cert-dir``: ``ca.crt``, and ``client.cert``/``client.key`` where it asks for them."""

    @classmethod
    def stack(cls, registry: RegistryService) -> Destination:
        return cls(f"{registry.address}/edgecore", registry.folder / "pushed.json", registry.client_certs())

    @classmethod
    def elsewhere(cls, address: str, state_dir: Path, cert_dir: Path | None = None) -> Destination:
        if not re.fullmatch(r"[A-Za-z0-9.\-]+(:[0-9]+)?(/[a-z0-9._\-]+)*", address):
            raise StackError(f"{address!r} is not a registry address (host[:port][/path])")
        name = re.sub(r"[^A-Za-z0-9.\-]", "_", address)
        return cls(address, state_dir / "images" / f"pushed-{name}.json", cert_dir)

    def read(self) -> dict[str, str]:
        """Published name → ``<address>/edgecore-<name>@sha256:…``; empty before any push."""
        return json.loads(self.record.read_text()) if self.record.is_file() else {}


def push(podman: Podman, ref: str, name: str, published: str, destination: Destination) -> str:
    """Push the local image ``ref`` as ``<address>/edgecore-<name>:<tag>``; its reference by digest,
    recorded under its ``published`` name."""
    repository = f"{destination.address}/edgecore-{name}"
    destination.record.parent.mkdir(parents=True, exist_ok=True)
    digestfile = destination.record.with_name(f"{name}.digest")
    digestfile.unlink(missing_ok=True)  # a digest from an earlier push is never read for this one
    certs = [f"--cert-dir={destination.cert_dir}"] if destination.cert_dir else []
    podman.run(
        ["push", *certs, f"--digestfile={digestfile}", ref, f"docker://{repository}:{TAG}"],
        f"podman push of {name} to {destination.address}",
        log=f"image-{name}-push.log",
    )
    digest = digestfile.read_text().strip()
    if not digest.startswith("sha256:"):
        raise StackError(f"podman push of {name} wrote no digest")
    pinned = f"{repository}@{digest}"
    record = destination.read() | {published: pinned}
    partial = destination.record.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(partial, destination.record)  # a reader sees the old record or the new, whole
    return pinned
