"""Every version of an edge's model: what the registry holds, what reached the edge, how good.

The controller only ever looks at the newest gated version; people looking at a fleet
(``notebooks/inspect_fleet.ipynb``) want the whole history: each version the registry
claimed, its manifest's metrics (accuracy across versions), and whether it was
delivered to the edge's bucket.  A claimed number without a manifest is a gap (a
publisher died, or it is being written) and is listed as such, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

from foundation.errors import NotFound
from foundation.layout import Layout, Location, parse_version
from foundation.manifest import Manifest
from foundation.registry import known_versions, listed_versions, read_version
from foundation.storage.objects import ObjectReader


@dataclass(frozen=True)
class VersionRecord:
    version: str
    manifest: Manifest | None
    """The registry's manifest, else the edge copy's; None for a gap."""
    in_registry: bool
    delivered: bool
    """A copy with its manifest written is in the edge's bucket."""

    @property
    def accuracy(self) -> float | None:
        value = self.manifest.metrics.get("accuracy") if self.manifest else None
        return float(value) if value is not None else None


def _manifest(store: ObjectReader, prefix: Location) -> Manifest | None:
    try:
        return read_version(store, prefix).manifest
    except NotFound:
        return None


def model_history(store: ObjectReader, layout: Layout, edge: str, model: str) -> list[VersionRecord]:
    """Each version of ``model`` known to the registry or the edge's bucket, oldest first."""
    registry = set(known_versions(store, layout.model_versions(model)))
    delivered = set(listed_versions(store, layout.edge_models_prefix(edge, model)))
    records: list[VersionRecord] = []
    for version in sorted(registry | delivered, key=parse_version):
        manifest = _manifest(store, layout.model_prefix(model, version)) if version in registry else None
        in_registry = manifest is not None
        edge_copy = None
        if version in delivered:
            edge_copy = _manifest(store, layout.edge_model_prefix(edge, model, version))
        records.append(VersionRecord(version, manifest or edge_copy, in_registry, edge_copy is not None))
    return records
