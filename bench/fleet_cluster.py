"""The world the fleet bench runs in: a CRD-validating Kubernetes API server, one
InferenceService and one edge bucket per edge, and the new version in every bucket.

All of it is setup, made before anything is timed; ``synced`` reads how far a rollout
got, from the InferenceServices the controllers patch.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client
from rich.progress import Progress
from sync_support import console

from edge_sync.delivery.edges import EdgeSpec, KServeSpec
from edge_sync.delivery.targets.kserve import SYNCED_AT, VERSION
from foundation.layout import MANIFEST, Layout, Location, edge_model_name
from foundation.manifest import FileEntry, Manifest
from foundation.storage.store import ObjectStore

CONTEXT = "edge-fleet"
"""The kubeconfig context of the test cluster, shared by the controllers and the bench."""


def start_api_server(kubeconfig: Path, ready_delay: float) -> subprocess.Popen[str]:
    """The CRD-validating API server in its own process, so its work never shares our GIL.

    It writes ``kubeconfig`` once it listens and then prints its URL, so reading that
    line is waiting for it to be ready.
    """
    api_server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testkit.kubeapi",
            "--kubeconfig",
            str(kubeconfig),
            "--context",
            CONTEXT,
            "--ready-delay",
            str(ready_delay),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert api_server.stdout is not None
    url = api_server.stdout.readline().strip()
    console.print(f"[cyan]•[/cyan] Kubernetes API server (CRD-validating) at {url}")
    return api_server


def edge_specs(kubeconfig: Path, edge_names: list[str]) -> list[EdgeSpec]:
    """Each edge served by its own InferenceService in the test cluster's ``stores`` namespace."""
    return [
        EdgeSpec(
            edge=e,
            target=KServeSpec(
                context=CONTEXT, kubeconfig=kubeconfig, namespace="stores", name=edge_model_name(e)
            ),
        )
        for e in edge_names
    ]


def inference_service(layout: Layout, edge: str) -> dict[str, Any]:
    """An InferenceService serving v000001, as the edge's previous rollout would have left it."""
    v1 = layout.edge_model_prefix(edge, edge_model_name(edge), "v000001").uri
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": edge_model_name(edge),
            "namespace": "stores",
            "annotations": {VERSION: "v000001", SYNCED_AT: datetime.now(UTC).isoformat()},
        },
        "spec": {"predictor": {"model": {"modelFormat": {"name": "tflite"}, "storageUri": v1}}},
    }


def create_services(
    crd: client.CustomObjectsApi, store: ObjectStore, layout: Layout, everyone: list[str]
) -> None:
    """Every edge's InferenceService and bucket, in parallel: setup, not timed."""
    with Progress(console=console) as progress, ThreadPoolExecutor(32) as pool:
        task = progress.add_task("InferenceServices serving v000001", total=len(everyone))

        def create(edge: str) -> None:
            body = inference_service(layout, edge)
            crd.create_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", "stores", "inferenceservices", body
            )
            store.ensure_bucket(layout.edge_bucket(edge))
            progress.advance(task)

        list(pool.map(create, everyone))


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


def synced(crd: client.CustomObjectsApi) -> int:
    """Edges serving v000002 with a Ready generation: the finish line of the timed part."""
    items = crd.list_namespaced_custom_object("serving.kserve.io", "v1beta1", "stores", "inferenceservices")
    return sum(
        1
        for i in items["items"]
        if i["metadata"]["name"].startswith("edge-")
        and i["metadata"]["annotations"].get(VERSION) == "v000002"
        and i["metadata"]["annotations"].get(SYNCED_AT)
        and i["status"]["observedGeneration"] == i["metadata"]["generation"]
    )
