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

import logging
import shutil
import uuid
from pathlib import Path

from edge_sync.delivery.edges import EdgeSpec
from foundation.errors import IntegrityError, InvalidInput, NotFound
from foundation.modelcar import pull_version
from foundation.oci import Reference, Registry
from foundation.registry import StoredVersion

log = logging.getLogger(__name__)


class Modelcars:
    """Locates and checks one edge's modelcars at the front door."""

    def __init__(self, registry: Registry, reference: Reference, scratch: Path) -> None:
        self.registry = registry
        self.reference = reference
        """The edge's model repository at the door (its tag is replaced by each version's)."""
        self.scratch = scratch

    def locate(self, spec: EdgeSpec, candidate: StoredVersion) -> str | None:
        """``oci://…@sha256:…`` of ``candidate``'s modelcar, once its files match the manifest; None
        where the version has none (published before the core pushed modelcars: the bucket serves it)."""
        tagged = Reference(self.reference.registry, self.reference.repository, candidate.version)
        try:
            pinned = self.registry.resolve(tagged)
        except NotFound:
            log.warning(
                "edge %s: %s has no modelcar; loading it from the bucket", spec.edge, candidate.version
            )
            return None
        folder = self.scratch / f"{spec.edge}-{candidate.version}-{uuid.uuid4().hex[:8]}"
        try:
            pull_version(self.registry, pinned, folder, expected=candidate.manifest)
        except InvalidInput as exc:  # whatever is wrong inside an image is a verdict on that version
            raise IntegrityError(f"{pinned}: {exc}") from exc
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return f"oci://{pinned}"
