"""Talking to a Kubernetes API server without kubectl: discovery, server-side apply, kubeconfigs.

The stack (``controlplane``) installs CRDs and cleans up namespaces with these, and tests
apply every rendered manifest through them, strictly validated by the server itself.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from edgecore.stack.tools import StackError

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def namespaced_collections(http: httpx.Client) -> list[str]:
    """URL paths (``{namespace}`` to fill in) of every namespaced resource that can be deleted by
    collection, through API discovery."""
    groups = ["/api/v1"] + [
        f"/apis/{v['groupVersion']}"
        for g in http.get("/apis").json()["groups"]
        for v in g["versions"][:1]  # the preferred version
    ]
    paths = []
    for base in groups:
        for resource in http.get(base).json().get("resources", []):
            if (
                resource["namespaced"]
                and "/" not in resource["name"]
                and "deletecollection" in resource["verbs"]
            ):
                paths.append(f"{base}/namespaces/{{namespace}}/{resource['name']}")
    return paths


def object_path(http: httpx.Client, obj: dict[str, Any]) -> str:
    """The URL path of ``obj`` (a collection's path plus its name), found through API discovery."""
    api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    found = http.get(base)
    if found.status_code != 200:
        raise StackError(
            f"the API server serves no {api_version} ({found.status_code}): is its CRD installed?"
        )
    resource = next(
        (r for r in found.json()["resources"] if r["kind"] == kind and "/" not in r["name"]), None
    )
    if resource is None:
        raise StackError(f"the API server serves no kind {kind} in {api_version}")
    meta = obj["metadata"]
    scope = f"/namespaces/{meta.get('namespace', 'default')}" if resource["namespaced"] else ""
    return f"{base}{scope}/{resource['name']}/{meta['name']}"


def server_side_apply(http: httpx.Client, obj: dict[str, Any], manager: str = "edgecore") -> dict[str, Any]:
    """Apply ``obj`` as ``manager`` owns it, refusing fields its schema does not know (strict)."""
    response = http.patch(
        object_path(http, obj),
        params={"fieldManager": manager, "force": "true", "fieldValidation": "Strict"},
        content=json.dumps(obj),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    if response.status_code not in (200, 201):
        what = f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
        raise StackError(f"applying {what} answered {response.status_code}: {response.text[:400]}")
    return dict(response.json())


def wait_established(http: httpx.Client, name: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        crd = http.get(f"{CRDS}/{name}").json()
        conditions = crd.get("status", {}).get("conditions", [])
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            return
        time.sleep(0.1)
    raise StackError(f"CRD {name} not established after {timeout_s:.0f}s")


def kubeconfig(server: str, ca: Path, user: dict[str, str], name: str = "edgecore-local") -> dict[str, Any]:
    """A one-context kubeconfig: ``user`` holds a client certificate and key, or a token."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


def delete_now(http: httpx.Client, path: str) -> None:
    """Delete the object at ``path`` at once: no garbage collector runs here to lift the finalizers a
    default (orphaning) deletion adds, so dependents are not waited for and leftover finalizers go."""
    http.delete(path, params={"propagationPolicy": "Background"})
    if http.get(path).status_code == 200:
        http.patch(
            path,
            content=json.dumps({"metadata": {"finalizers": None}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
