"""Pushing built images to the stack's registry and remembering the digests it answered.

The digest, not the tag, is what the pipeline and the overlays are pinned to: a tag can be
pushed again, a digest names these bytes for ever.  The record lives with the registry's
data (``<state_dir>/registry/pushed.json``), so a fresh registry never leaves pins to
images it no longer holds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgecore.images.build import BuiltImage
from edgecore.images.podman import Podman
from edgecore.stack.registry import RegistryService
from edgecore.stack.tools import StackError
from foundation.images import TAG


def pushed_record(registry: RegistryService) -> Path:
    """Where the digests the registry answered are kept, with its data."""
    return registry.folder / "pushed.json"


def read_pushed(registry: RegistryService) -> dict[str, str]:
    """Published name → ``<registry>/edgecore/<name>@sha256:…``; empty before any push."""
    path = pushed_record(registry)
    return json.loads(path.read_text()) if path.is_file() else {}


def push(podman: Podman, built: BuiltImage, registry: RegistryService) -> str:
    """Push ``built`` as ``<registry>/edgecore/<name>:<tag>``; its reference by digest."""
    repository = f"{registry.address}/edgecore/{built.spec.name}"
    digestfile = registry.folder / f"{built.spec.name}.digest"
    digestfile.unlink(missing_ok=True)  # a digest from an earlier push is never read for this one
    podman.run(
        [
            "push",
            f"--cert-dir={registry.client_certs()}",
            f"--digestfile={digestfile}",
            built.ref,
            f"docker://{repository}:{TAG}",
        ],
        f"podman push of {built.spec.name}",
        log=f"image-{built.spec.name}-push.log",
    )
    digest = digestfile.read_text().strip()
    if not digest.startswith("sha256:"):
        raise StackError(f"podman push of {built.spec.name} wrote no digest")
    pinned = f"{repository}@{digest}"
    record = read_pushed(registry) | {built.spec.published: pinned}
    partial = pushed_record(registry).with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(partial, pushed_record(registry))  # a reader sees the old record or the new, whole
    return pinned
