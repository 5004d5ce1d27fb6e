"""publish: register a gated model version, deliver it to the edge, announce it.

Order matters, because readers trust manifests: claim a version number, upload every
file, then the manifest (the version now exists in the registry), copy the files and
then the manifest to the edge's bucket (the edge sees it only when complete), and only
then emit ``model-published``.  A retried publish claims a fresh number; the abandoned
claim is a harmless gap.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgecore.errors import IntegrityError
from edgecore.events import ModelPublished
from edgecore.layout import MANIFEST, Layout, Location, edge_model_name
from edgecore.manifest import Manifest
from edgecore.storage import ObjectStore
from edgecore.versions import claim_next_version


def publish(
    store: ObjectStore,
    layout: Layout,
    export_dir: Path,
    edge: str,
    emit: Callable[[ModelPublished], None],
    owner: str = "pipeline",
    workers: int = 4,
) -> ModelPublished:
    exported = Manifest.from_bytes((export_dir / MANIFEST).read_bytes(), str(export_dir / MANIFEST))
    model = edge_model_name(edge)
    if exported.name != model:
        raise IntegrityError(f"{export_dir} holds model {exported.name}, not {model} of edge {edge}")
    exported.verify_dir(export_dir)
    store.ensure_bucket(layout.models_bucket)
    version = claim_next_version(store, layout.model_versions(model), owner)
    manifest = exported.model_copy(update={"version": version})
    names = sorted(manifest.files)

    def upload(name: str) -> None:
        store.put_file(layout.model_file(model, version, name), export_dir / name)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(upload, names))
    store.put_bytes(layout.model_manifest(model, version), manifest.to_bytes(), "application/json")

    edge_prefix = layout.edge_model_prefix(edge, model, version)
    store.ensure_bucket(edge_prefix.bucket)

    def deliver(name: str) -> None:
        store.copy(
            layout.model_file(model, version, name), Location(edge_prefix.bucket, edge_prefix.key + name)
        )

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(deliver, [*names]))
    deliver(MANIFEST)
    event = ModelPublished(
        model=model,
        version=version,
        registry_uri=layout.model_prefix(model, version).uri,
        edge_uris={edge: edge_prefix.uri},
        files={name: entry.sha256 for name, entry in manifest.files.items()},
        labels=manifest.labels,
        metrics=manifest.metrics,
        datasets=list(manifest.metadata.get("datasets", [])),
    )
    emit(event)
    return event
