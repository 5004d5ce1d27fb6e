"""Test support for the edge sync controller: edges, delivered versions, an edge cluster.

``deliver`` writes a model version into an edge bucket exactly as the publisher does
(every file first, ``manifest.json`` with each file's sha256 last).  ``EdgeCluster``
is a namespace of the stack's real Kubernetes API server with one InferenceService per
edge, reached through a kubeconfig that holds the sync controller's own token.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from edge_sync.delivery.edges import EdgeSpec, KServeSpec
from edge_sync.delivery.targets.address import VersionedInferenceProbe
from edge_sync.delivery.targets.kserve import KServeTarget, api_client
from edgecore.kustomize import build
from edgecore.stack import apiclient
from edgecore.stack.apiclient import server_side_apply
from edgecore.stack.controlplane import ControlPlane
from edgecore.stack.settings import StackSettings
from foundation.layout import MANIFEST, Layout, Location, edge_model_name
from foundation.manifest import FileEntry, Manifest
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.kserve_standin import API_VERSION, GROUP, PLURAL, KServeStandIn

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"


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
    metadata: dict[str, Any] | None = None,
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
        metadata=metadata or {},
    )
    store.put_bytes(Location(prefix.bucket, prefix.key + MANIFEST), manifest.to_bytes(), "application/json")
    return prefix


def corrupt_in_place(store: ObjectStore, loc: Location, data: bytes) -> None:
    """Replace an object's bytes but keep its recorded sha256 (bit rot, a bad copy)."""
    recorded = store.head(loc).sha256
    store.client.put_object(Bucket=loc.bucket, Key=loc.key, Body=data, Metadata={"sha256": recorded})


SYNC_CONTROLLER = "edgecore-sync-controller"
"""The edge overlay's ServiceAccount, Role and RoleBinding: what the controller may do."""


@functools.cache
def sync_controller_rbac() -> tuple[dict[str, Any], ...]:
    """The edge overlay's objects that grant the sync controller its rights, as rendered."""
    rendered = build(StackSettings(), MANIFESTS / "edge")
    kinds = {"ServiceAccount", "Role", "RoleBinding"}
    return tuple(o for o in rendered if o["kind"] in kinds and o["metadata"]["name"] == SYNC_CONTROLLER)


def in_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``obj`` moved to ``namespace``, with the ServiceAccounts a binding names."""
    moved = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
    if "subjects" in obj:
        moved["subjects"] = [
            {**s, "namespace": namespace} if s.get("kind") == "ServiceAccount" else s for s in obj["subjects"]
        ]
    return moved


@dataclass
class EdgeCluster:
    """A namespace of the stack's real API server holding one InferenceService per edge.

    The targets connect as the edge overlay's ServiceAccount (a TokenRequest token), so
    its Role is enforced; KServe's part is played by ``KServeStandIn``.
    """

    admin: client.CustomObjectsApi
    kserve: KServeStandIn
    kubeconfig: Path
    context: str
    namespace: str

    def add_edge(self, edge: str, storage_uri: str, **annotations: str) -> None:
        self.admin.create_namespaced_custom_object(
            GROUP,
            API_VERSION,
            self.namespace,
            PLURAL,
            inference_service(self.namespace, edge, storage_uri, **annotations),
        )

    def get(self, edge: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.admin.get_namespaced_custom_object(
            GROUP, API_VERSION, self.namespace, PLURAL, edge_model_name(edge)
        )
        return obj

    def spec(self, edge: str, canary_percent: int = 0) -> EdgeSpec:
        return EdgeSpec(
            edge=edge,
            target=KServeSpec(
                context=self.context,
                kubeconfig=self.kubeconfig,
                namespace=self.namespace,
                name=edge_model_name(edge),
                canary_percent=canary_percent,
                confirm_through_address=True,  # the stand-in's address is reachable from here
            ),
        )

    def target(self, edge: str, canary_percent: int = 0, ready_timeout_s: float = 20.0) -> KServeTarget:
        api = api_client(self.context, str(self.kubeconfig))
        return KServeTarget(
            api,
            self.namespace,
            edge_model_name(edge),
            canary_percent,
            ready_timeout_s,
            self.context,
            VersionedInferenceProbe(),
        )

    def storage_uri(self, edge: str) -> str:
        return str(self.get(edge)["spec"]["predictor"]["model"]["storageUri"])

    def annotations(self, edge: str) -> dict[str, str]:
        notes: dict[str, str] = self.get(edge)["metadata"].get("annotations", {})
        return notes

    def uri_changes(self, edge: str) -> list[str]:
        """Every storage URI the InferenceService was given, in order (consecutive repeats once)."""
        uris = [uri for uri, _ in self.kserve.history(edge_model_name(edge))]
        return [u for i, u in enumerate(uris) if i == 0 or uris[i - 1] != u]

    def writes(self, edge: str) -> int:
        """Changes to the InferenceService's metadata or spec since it was created."""
        return self.kserve.writes(edge_model_name(edge))


def inference_service(namespace: str, edge: str, storage_uri: str, **annotations: str) -> dict[str, Any]:
    """An edge's InferenceService as an operator would first create it."""
    return {
        "apiVersion": f"{GROUP}/{API_VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": edge_model_name(edge), "namespace": namespace, "annotations": annotations},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "model": {"modelFormat": {"name": "edgecore-litert"}, "storageUri": storage_uri},
            }
        },
    }


@contextlib.contextmanager
def edge_cluster(kube: ControlPlane, folder: Path, ready_delay_s: float = 0.05) -> Iterator[EdgeCluster]:
    """A fresh namespace with the controller's RBAC, its token's kubeconfig and the stand-in."""
    namespace = f"edge-{uuid.uuid4().hex[:8]}"
    context = f"edge-cluster-{namespace}"
    with kube.http() as http:
        http.post("/api/v1/namespaces", json={"metadata": {"name": namespace}}).raise_for_status()
        for obj in sync_controller_rbac():
            server_side_apply(http, in_namespace(obj, namespace))
        token = http.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{SYNC_CONTROLLER}/token",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        )
        token.raise_for_status()
    config = apiclient.kubeconfig(kube.url, kube.pki.ca, {"token": token.json()["status"]["token"]}, context)
    kubeconfig = folder / f"kubeconfig-{namespace}"
    with os.fdopen(os.open(kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(yaml.safe_dump(config))  # a token: never readable by others, not even for a moment
    admin = api_client(kube.admin_kubeconfig()["current-context"], str(kube.kubeconfig))
    kserve = KServeStandIn(admin, namespace, ready_delay_s)
    try:
        yield EdgeCluster(client.CustomObjectsApi(admin), kserve, kubeconfig, context, namespace)
    finally:
        kserve.stop()
        kube.remove_namespace(namespace)


def subprocess_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "EDGECORE_EDGE_BUCKET_PREFIX": settings.buckets.edge_prefix,
        "EDGECORE_STATE_DIR": str(settings.state_dir),
    }
    env.update({f"EDGECORE_{k.upper()}": v for k, v in extra.items()})
    return env
