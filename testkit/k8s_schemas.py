"""Validating Kubernetes objects against the real schemas, without a cluster.

Built-in kinds are checked with ``kubernetes-validate`` (the upstream OpenAPI schemas,
strict: unknown fields are errors).  Custom resources are checked against the
``openAPIV3Schema`` of the upstream CRDs in ``../shared/crds`` (never copied into this
repo), made strict the same way: an object node that lists its properties and does not
preserve unknown fields rejects fields it does not list, as ``kubectl --validate=strict``
would report them.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

CRDS = Path(__file__).resolve().parents[1].parent / "shared" / "crds"
KUBERNETES_VERSION = "1.33.0"


def require_crds() -> Path:
    if not CRDS.is_dir():
        pytest.skip(f"upstream CRD schemas not found at {CRDS} (../shared/crds beside the checkout)")
    return CRDS


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _strict(v) for k, v in node.items()}
        if (
            node.get("type") == "object"
            and "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


@functools.cache
def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(require_crds().rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                schemas[(f"{group}/{version['name']}", kind)] = _strict(schema)
    return schemas


def validation_errors(obj: dict[str, Any]) -> list[str]:
    """Every schema violation of one object, as readable strings (empty when valid)."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    name = f"{kind}/{obj.get('metadata', {}).get('name')}"
    if (
        "/" in api_version
        and "." in api_version.split("/")[0]
        and not api_version.startswith(
            ("apps/", "batch/", "rbac.authorization.k8s.io/", "networking.k8s.io/", "policy/", "autoscaling/")
        )
    ):
        schema = _crd_schemas().get((api_version, kind))
        if schema is None:
            return [f"{name}: no CRD schema for {api_version} {kind} in {CRDS}"]
        validator = jsonschema.Draft7Validator(schema)
        return [
            f"{name}: {'.'.join(str(p) for p in err.absolute_path)}: {err.message}"
            for err in validator.iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [f"{name}: {'.'.join(str(p) for p in err.path)}: {err.message}"]
    return []
