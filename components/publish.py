"""publish: register a gated model version and announce it to the edges that pull it.

Order matters, because readers trust manifests: the registry gets every file, then the
manifest (``foundation.registry.publish_model``: the version now exists), and only then
is ``model-published`` emitted.  The core writes nothing at an edge: each edge's sync
controller pulls the version through the front door into its own storage.  A retried
publish claims a fresh number; the abandoned claim is a harmless gap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from foundation.errors import IntegrityError
from foundation.events import ModelPublished
from foundation.layout import MANIFEST, Layout, edge_models
from foundation.manifest import Manifest
from foundation.registry import publish_model
from foundation.storage.objects import ObjectStorage


def publish(
    store: ObjectStorage,
    layout: Layout,
    export_dir: Path,
    edge: str,
    emit: Callable[[ModelPublished], None],
    owner: str = "pipeline",
    modelcar: Callable[[Path, Manifest], str] | None = None,
) -> ModelPublished:
    """``modelcar``: pushes the published version as an OCI image and answers its digest, before the
    event (an edge told of a version finds its modelcar)."""
    exported = Manifest.from_bytes((export_dir / MANIFEST).read_bytes(), str(export_dir / MANIFEST))
    model = exported.name
    if model not in edge_models(edge):
        raise IntegrityError(f"{export_dir} holds model {model}, not one of edge {edge}'s")
    manifest = publish_model(store, layout, export_dir, owner)
    digest = modelcar(export_dir, manifest) if modelcar is not None else None
    event = ModelPublished(
        model=model,
        version=manifest.version,
        registry_uri=layout.model_prefix(model, manifest.version).uri,
        edges=[edge],
        files={name: entry.sha256 for name, entry in manifest.files.items()},
        labels=manifest.labels,
        metrics=manifest.metrics,
        datasets=list(manifest.metadata.get("datasets", [])),
        modelcar=digest,
    )
    emit(event)
    return event
