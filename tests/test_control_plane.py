"""The stack's Kubernetes API server: real TLS, authentication, RBAC and CRD validation."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator

import httpx
import pytest

from edgecore.stack.apiclient import server_side_apply
from edgecore.stack.controlplane import ControlPlane
from testkit.k8s_schemas import require_crds


@pytest.fixture
def namespace(kube: ControlPlane) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    with kube.http() as http:
        server_side_apply(http, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kube.remove_namespace(name)


def service_account_token(kube: ControlPlane, namespace: str, rules: list[dict[str, object]]) -> str:
    """A service account with a Role of ``rules`` in ``namespace``, and a token from TokenRequest."""
    meta = {"name": "sync", "namespace": namespace}
    rbac = "rbac.authorization.k8s.io"
    with kube.http() as http:
        server_side_apply(http, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
        server_side_apply(
            http, {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": meta, "rules": rules}
        )
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "sync"},
            "subjects": [{"kind": "ServiceAccount", "name": "sync", "namespace": namespace}],
        }
        server_side_apply(http, binding)
        response = http.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/sync/token",
            json={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 600},
            },
        )
    assert response.status_code == 201, response.text
    return str(response.json()["status"]["token"])


def test_it_serves_tls_and_refuses_a_client_without_credentials(kube: ControlPlane) -> None:
    context = ssl.create_default_context(cafile=str(kube.pki.ca))
    with httpx.Client(base_url=kube.url, verify=context) as anonymous:
        assert anonymous.get("/api/v1/namespaces").status_code == 401


def test_etcd_takes_only_clients_with_a_certificate_of_the_stack_s_ca(kube: ControlPlane) -> None:
    """The API server's storage is not a way around its authentication and RBAC."""
    context = ssl.create_default_context(cafile=str(kube.pki.ca))
    etcd = f"https://{kube.stack.kube_host}:{kube.stack.etcd_port}/version"
    with pytest.raises(httpx.HTTPError):
        httpx.get(etcd, verify=context, timeout=5)
    with pytest.raises(httpx.HTTPError):
        httpx.get(etcd.replace("https", "http"), timeout=5)


def test_a_service_account_may_do_what_its_role_allows_and_nothing_else(
    kube: ControlPlane, namespace: str
) -> None:
    token = service_account_token(
        kube, namespace, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]
    )
    with kube.http(token=token) as sync:
        assert sync.get(f"/api/v1/namespaces/{namespace}/configmaps").status_code == 200
        assert sync.get(f"/api/v1/namespaces/{namespace}/secrets").status_code == 403
        assert sync.get("/api/v1/namespaces/default/configmaps").status_code == 403
        created = sync.post(
            f"/api/v1/namespaces/{namespace}/configmaps",
            json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
        )
        assert created.status_code == 403


def test_the_upstream_crds_are_installed_and_validate_what_is_stored(
    kube: ControlPlane, namespace: str
) -> None:
    require_crds()
    path = f"/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices"
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "store-products", "namespace": namespace},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "tflite"}, "storageUri": "s3://m/v000001"}}},
    }
    with kube.http() as http:
        stored = http.post(path, json=isvc)
        broken = http.post(
            path,
            json={**isvc, "metadata": {"name": "broken"}, "spec": {"predictor": {"minReplicas": "many"}}},
        )
    assert stored.status_code == 201, stored.text
    assert stored.json()["metadata"]["generation"] == 1
    assert broken.status_code == 422 and "minReplicas" in broken.text


def test_a_removed_namespace_is_gone_with_everything_in_it(kube: ControlPlane) -> None:
    """No namespace controller runs here: the stack does its work, or namespaces stay Terminating."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": name}}
    with kube.http() as http:
        server_side_apply(http, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        server_side_apply(http, config)

        kube.remove_namespace(name)

        assert http.get(f"/api/v1/namespaces/{name}").status_code == 404
        assert http.get(f"/api/v1/namespaces/{name}/configmaps/x").status_code == 404
