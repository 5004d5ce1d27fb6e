"""Test support for the edge sync controller: edges, delivered versions, an edge cluster.

``deliver`` writes a model version into an edge bucket exactly as the publisher does
(every file first, ``manifest.json`` with each file's sha256 last).  ``EdgeCluster``
is the in-process Kubernetes API server of ``kubeapi`` with one InferenceService per
edge and a kubeconfig whose context names the edge cluster.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from edge_sync.delivery.edges import EdgeSpec, KServeSpec
from edge_sync.delivery.targets.kserve import KServeTarget, api_client
from foundation.layout import MANIFEST, Layout, Location, edge_model_name
from foundation.manifest import FileEntry, Manifest
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.kubeapi import KubeApi, KubeApiServer, inference_service

NAMESPACE = "store"


def model_files(version: str, size: int = 64 * 1024) -> dict[str, bytes]:
    """The files of a published version (content differs per version)."""
    seed = hashlib.sha256(version.encode()).digest()
    blob = (seed * (size // len(seed) + 1))[:size]
    return {
        "model.tflite": blob,
        "saved_model/saved_model.pb": blob[: size // 2],
        "saved_model/fingerprint.pb": seed,
        "labels.json": b'["APPLE-RED", "LIME-GREEN"]',
        "catalogue.json": b'{"edge": "x", "products": []}',
        "model_card.md": f"# model {version}\n".encode(),
    }


def deliver(
    store: ObjectStore,
    layout: Layout,
    edge: str,
    version: str,
    files: dict[str, bytes] | None = None,
    manifest_files: dict[str, bytes] | None = None,
) -> Location:
    """Upload a version to the edge bucket, manifest last.

    ``manifest_files`` (default: ``files``) is what the manifest describes, so a test
    can deliver bytes that differ from what the manifest promises.
    """
    files = files if files is not None else model_files(version)
    described = manifest_files if manifest_files is not None else files
    model = edge_model_name(edge)
    prefix = layout.edge_model_prefix(edge, model, version)
    store.ensure_bucket(prefix.bucket)
    for name, data in files.items():
        store.put_bytes(Location(prefix.bucket, prefix.key + name), data)
    manifest = Manifest(
        kind="model",
        name=model,
        version=version,
        files={n: FileEntry(sha256=hashlib.sha256(d).hexdigest(), size=len(d)) for n, d in described.items()},
        labels=["APPLE-RED", "LIME-GREEN"],
        metrics={"accuracy": 0.97},
    )
    store.put_bytes(Location(prefix.bucket, prefix.key + MANIFEST), manifest.to_bytes(), "application/json")
    return prefix


def corrupt_in_place(store: ObjectStore, loc: Location, data: bytes) -> None:
    """Replace an object's bytes but keep its recorded sha256 (bit rot, a bad copy)."""
    recorded = store.head(loc).sha256
    store.client.put_object(Bucket=loc.bucket, Key=loc.key, Body=data, Metadata={"sha256": recorded})


@dataclass
class EdgeCluster:
    server: KubeApiServer
    kubeconfig: Path
    context: str

    @property
    def api(self) -> KubeApi:
        return self.server.api

    def add_edge(self, edge: str, storage_uri: str, **annotations: str) -> None:
        self.api.create(
            NAMESPACE, inference_service(NAMESPACE, edge_model_name(edge), storage_uri, **annotations)
        )

    def spec(self, edge: str, canary_percent: int = 0) -> EdgeSpec:
        return EdgeSpec(
            edge=edge,
            target=KServeSpec(
                context=self.context,
                kubeconfig=self.kubeconfig,
                namespace=NAMESPACE,
                name=edge_model_name(edge),
                canary_percent=canary_percent,
            ),
        )

    def target(self, edge: str, canary_percent: int = 0, ready_timeout_s: float = 20.0) -> KServeTarget:
        client = api_client(self.context, str(self.kubeconfig))
        return KServeTarget(
            client, NAMESPACE, edge_model_name(edge), canary_percent, ready_timeout_s, self.context
        )

    def storage_uri(self, edge: str) -> str:
        return self.api.storage_uri(NAMESPACE, edge_model_name(edge))

    def annotations(self, edge: str) -> dict[str, str]:
        notes: dict[str, str] = self.api.get(NAMESPACE, edge_model_name(edge))["metadata"].get(
            "annotations", {}
        )
        return notes

    def uri_changes(self, edge: str) -> list[str]:
        return self.api.uri_changes(NAMESPACE, edge_model_name(edge))

    def writes(self) -> int:
        return sum(1 for method, _, _ in self.api.requests if method != "GET")


def subprocess_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "EDGECORE_EDGE_BUCKET_PREFIX": settings.buckets.edge_prefix,
        "EDGECORE_STATE_DIR": str(settings.state_dir),
    }
    env.update({f"EDGECORE_{k.upper()}": v for k, v in extra.items()})
    return env
