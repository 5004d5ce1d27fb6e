"""Every object the project ships, applied to the stack's real Kubernetes API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgecore.kustomize import build
from edgecore.stack.apiclient import delete_now, server_side_apply
from edgecore.stack.controlplane import ControlPlane
from edgecore.stack.settings import StackSettings
from testkit.k8s_schemas import require_crds

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"
OVERLAYS = ["core", "edge", "observability", "fleet", "kfp-run"]
NO_UPSTREAM_CRD = {("kafka.strimzi.io/v1", "KafkaUser")}
"""Kinds whose CRD is not among ../shared/crds: the API server has no type to store them as."""
INSTALLED_BY_OTHERS = {
    "monitoring": "kube-prometheus-stack",
    "argocd": "Argo CD",
    "kubeflow": "Kubeflow Pipelines",
}
"""Namespaces an overlay puts objects in but does not create: the tools named own them."""


@pytest.fixture(autouse=True)
def crds() -> None:
    require_crds()


def applied(kube: ControlPlane, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Namespaces first, then the rest, as a GitOps tool applies them; what the server stored."""
    ordered = sorted(objects, key=lambda o: o["kind"] != "Namespace")
    with kube.http() as http:
        for name in INSTALLED_BY_OTHERS:
            server_side_apply(http, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        for job in (o for o in ordered if o["kind"] == "Job"):  # immutable: replaced, as an Argo CD hook is
            meta = job["metadata"]
            delete_now(http, f"/apis/batch/v1/namespaces/{meta['namespace']}/jobs/{meta['name']}")
        return [
            server_side_apply(http, o) for o in ordered if (o["apiVersion"], o["kind"]) not in NO_UPSTREAM_CRD
        ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_an_overlay_renders_is_accepted_with_strict_field_validation(
    kube: ControlPlane, overlay: str
) -> None:
    rendered = build(StackSettings(), MANIFESTS / overlay)

    stored = applied(kube, rendered)

    assert len(stored) == len([o for o in rendered if (o["apiVersion"], o["kind"]) not in NO_UPSTREAM_CRD])
    assert all(o["metadata"]["uid"] for o in stored)


def test_the_sync_controllers_role_lets_it_patch_inference_services_and_nothing_more(
    kube: ControlPlane,
) -> None:
    """The controller runs as the edge overlay's service account, with a token from TokenRequest."""
    rendered = build(StackSettings(), MANIFESTS / "edge")
    applied(kube, rendered)
    namespace = next(o["metadata"]["name"] for o in rendered if o["kind"] == "Namespace")
    isvcs = f"/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices"
    isvc = next(o for o in rendered if o["kind"] == "InferenceService")["metadata"]["name"]
    with kube.http() as admin:
        token = admin.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/edgecore-sync-controller/token",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        ).json()["status"]["token"]
    with kube.http(token=token) as controller:
        patch = {"metadata": {"annotations": {"edgecore.io/probe": "1"}}}
        patched = controller.patch(
            f"{isvcs}/{isvc}", json=patch, headers={"Content-Type": "application/merge-patch+json"}
        )
        assert controller.get(f"{isvcs}/{isvc}").status_code == 200
        assert patched.status_code == 200, patched.text
        assert controller.get(f"/api/v1/namespaces/{namespace}/secrets").status_code == 403
        assert controller.delete(f"{isvcs}/{isvc}").status_code == 403
        assert controller.get(isvcs.replace(namespace, "default")).status_code == 403
