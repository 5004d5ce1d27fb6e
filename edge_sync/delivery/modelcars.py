"""The edge's side of modelcars: each version's image, pulled through the front door and checked first.

With ``delivery.model_source = "oci"`` the targets load versions as modelcars: KServe
mounts the image (an ``oci://`` storage URI, pulled by the kubelet with the edge's image
pull secret) and the local model server pulls it itself.  Before any target is pointed
at one, the controller pulls the image's model layer and checks every file against the
manifest the front door gave for that version; the reference it hands on is pinned to
the image's digest, so what a target pulls is what was checked, whatever its tag says
later.  The version still arrives in the edge's bucket too (the pull), where the
controller learns of it and the catalogue check reads its labels.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from edge_sync.delivery.edges import EdgeSpec
from foundation.modelcar import pull_version
from foundation.oci import Reference, Registry
from foundation.registry import StoredVersion


class Modelcars:
    """Locates and checks one edge's modelcars at the front door."""

    def __init__(self, registry: Registry, reference: Reference, scratch: Path) -> None:
        self.registry = registry
        self.reference = reference
        """The edge's model repository at the door; only its tag changes per version."""
        self.scratch = scratch

    def locate(self, spec: EdgeSpec, candidate: StoredVersion) -> str:
        """``oci://…@sha256:…`` of ``candidate``'s modelcar, once its files match the manifest."""
        tagged = Reference(self.reference.registry, self.reference.repository, candidate.version)
        pinned = self.registry.resolve(tagged)
        folder = self.scratch / f"{spec.edge}-{candidate.version}-{uuid.uuid4().hex[:8]}"
        try:
            pull_version(self.registry, pinned, folder, expected=candidate.manifest)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return f"oci://{pinned}"
