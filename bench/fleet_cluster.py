"""The world the fleet bench runs in: a namespace of the stack's real Kubernetes API
server with KServe's stand-in, one InferenceService and one edge bucket per edge, and the
new version in every bucket.

All of it is setup, made before anything is timed; ``synced`` reads how far a rollout
got, from the InferenceServices the controllers patch.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from rich.progress import Progress
from sync_support import console

from edge_sync.delivery.edges import EdgeSpec
from edge_sync.delivery.targets.isvc import SYNCED_AT, VERSION
from foundation.layout import MANIFEST, Layout, Location, edge_model_name
from foundation.manifest import FileEntry, Manifest
from foundation.storage.store import ObjectStore
from testkit.delivery import EdgeCluster


def edge_specs(cluster: EdgeCluster, edge_names: list[str]) -> list[EdgeSpec]:
    """Each edge served by its own InferenceService in the cluster's namespace."""
    return [cluster.spec(e) for e in edge_names]


def create_services(cluster: EdgeCluster, store: ObjectStore, layout: Layout, everyone: list[str]) -> None:
    """Every edge's InferenceService serving v000001 and its bucket, in parallel: setup, not timed."""
    with Progress(console=console) as progress, ThreadPoolExecutor(16) as pool:
        task = progress.add_task("InferenceServices serving v000001", total=len(everyone))

        def create(edge: str) -> None:
            v1 = layout.edge_model_prefix(edge, edge_model_name(edge), "v000001").uri
            cluster.add_edge(edge, v1, **{VERSION: "v000001", SYNCED_AT: datetime.now(UTC).isoformat()})
            store.ensure_bucket(layout.edge_bucket(edge))
            progress.advance(task)

        list(pool.map(create, everyone))


def wait_for_pods(cluster: EdgeCluster, everyone: list[str]) -> None:
    """Until KServe's stand-in has v000001 up everywhere: its status writes are not part of the timing."""
    names = {edge_model_name(e) for e in everyone}
    with Progress(console=console) as progress:
        task = progress.add_task("v000001 up in every InferenceService", total=len(names))
        while (up := sum(1 for n in names if cluster.kserve.serving(n))) < len(names):
            progress.update(task, completed=up)
            time.sleep(0.25)


def small_version(version: str) -> dict[str, bytes]:
    """A small version whose bytes depend on its name: the fleet's cost is per edge, not per byte."""
    seed = hashlib.sha256(version.encode()).digest()
    blob = (seed * 2048)[: 64 * 1024]
    return {
        "model.tflite": blob,
        "saved_model/saved_model.pb": blob[:16384],
        "saved_model/variables/variables.index": seed,
        "labels.json": b'["APPLE-RED", "LIME-GREEN", "BLUEBERRY-BOX"]',
        "catalogue.json": b'{"edge": "bench", "products": []}',
        "model_card.md": f"# bench {version}\n".encode(),
    }


def deliver(store: ObjectStore, layout: Layout, edge: str, version: str, files: dict[str, bytes]) -> str:
    """Put a version and its manifest in an edge bucket, as the publish step does for a real edge."""
    prefix = layout.edge_model_prefix(edge, edge_model_name(edge), version)
    store.ensure_bucket(prefix.bucket)
    for name, data in files.items():
        store.put_bytes(Location(prefix.bucket, prefix.key + name), data)
    manifest = Manifest(
        kind="model",
        name=edge_model_name(edge),
        version=version,
        files={n: FileEntry(sha256=hashlib.sha256(d).hexdigest(), size=len(d)) for n, d in files.items()},
    )
    store.put_bytes(Location(prefix.bucket, prefix.key + MANIFEST), manifest.to_bytes(), "application/json")
    return prefix.uri


def deliver_everywhere(
    store: ObjectStore, layout: Layout, everyone: list[str], files: dict[str, bytes]
) -> None:
    """v000002 in every edge bucket before any event, so the upload is not part of the timing."""
    with Progress(console=console) as progress, ThreadPoolExecutor(32) as pool:
        task = progress.add_task("v000002 delivered to each edge bucket", total=len(everyone))

        def publish(edge: str) -> None:
            deliver(store, layout, edge, "v000002", files)
            progress.advance(task)

        list(pool.map(publish, everyone))


def synced(cluster: EdgeCluster) -> int:
    """Edges whose controller confirmed v000002, which it does only once the predictor at the
    InferenceService's address answers for it: the finish line of the timed part.  Read from
    the stand-in's watch, so that counting puts no load on the API server being measured."""
    return sum(
        1
        for name, notes in cluster.kserve.annotations().items()
        if name.startswith("edge-") and notes.get(VERSION) == "v000002" and notes.get(SYNCED_AT)
    )
