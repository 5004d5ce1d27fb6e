"""Every kustomize overlay builds, and every object it renders passes the real schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from edge_sync.delivery.targets.isvc import OWNED_FIELDS
from edgecore.cli import app
from edgecore.edge_access import edge_access_objects
from edgecore.kustomize import build
from edgecore.stack.settings import StackSettings
from foundation.settings import Settings
from serving.isvc import Deployment, edge_objects
from testkit.k8s_schemas import require_crds, validation_errors

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"
OVERLAYS = ["core", "edge", "observability", "fleet", "kfp-run"]
# Kinds whose upstream CRD is not among ../shared/crds: their objects are built by code a
# test runs against the real service instead (KafkaUser: foundation.kafka_users on the broker).
NO_UPSTREAM_SCHEMA = {("kafka.strimzi.io/v1", "KafkaUser")}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return build(StackSettings(), MANIFESTS / request.param)


def test_every_rendered_object_is_valid_against_kubernetes_and_crd_schemas(
    rendered: list[dict[str, Any]],
) -> None:
    require_crds()
    checked = [o for o in rendered if (o["apiVersion"], o["kind"]) not in NO_UPSTREAM_SCHEMA]
    errors = [e for obj in checked for e in validation_errors(obj)]
    assert errors == []


def test_a_typo_in_a_custom_resource_is_caught() -> None:
    require_crds()
    isvc = next(o for o in build(StackSettings(), MANIFESTS / "edge") if o["kind"] == "InferenceService")
    isvc["spec"]["predictor"]["model"]["storageUrl"] = isvc["spec"]["predictor"]["model"].pop("storageUri")
    assert any("storageUrl" in e for e in validation_errors(isvc))


def _containers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for obj in objects:
        spec = obj.get("spec", {})
        pod = spec.get("template", {}).get("spec") if obj["kind"] in ("Deployment", "Job") else None
        if obj["kind"] == "ServingRuntime":
            pod = spec
        found.extend((pod or {}).get("containers", []))
    return found


@pytest.mark.parametrize("overlay", ["core", "edge"])
def test_every_container_runs_a_real_edgecore_command(overlay: str) -> None:
    for container in _containers(build(StackSettings(), MANIFESTS / overlay)):
        argv = [*container.get("command", []), *container.get("args", [])]
        if argv[:2] == ["python", "-m"]:
            help_text = subprocess.run(
                [sys.executable, "-m", argv[2], "--help"], capture_output=True, text=True, check=False
            ).stdout
            words: list[str] = []
        else:
            assert argv[0] == "edgecore", argv
            words = [a for a in argv[1:] if not a.startswith("-") and "$(" not in a][:2]
            result = CliRunner().invoke(app, [*words, "--help"])
            assert result.exit_code == 0, f"{container['name']}: `edgecore {' '.join(words)}` {result.output}"
            help_text = result.output
        for flag in (a.split("=")[0] for a in argv if a.startswith("--")):
            assert flag in help_text, f"{container['name']}: {flag} is not an option of {argv[:4]}"


def test_the_edge_sync_controller_may_only_get_and_patch_inferenceservices() -> None:
    role = next(o for o in build(StackSettings(), MANIFESTS / "edge") if o["kind"] == "Role")
    assert role["rules"] == [
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"], "verbs": ["get", "patch"]}
    ]


def test_the_predictor_secret_carries_kserve_s3_annotations() -> None:
    secret = next(o for o in build(StackSettings(), MANIFESTS / "edge") if o["kind"] == "Secret")
    assert {"serving.kserve.io/s3-endpoint", "serving.kserve.io/s3-usehttps"} <= set(
        secret["metadata"]["annotations"]
    )


def test_the_edge_serving_objects_are_the_ones_serving_isvc_builds() -> None:
    cluster = Settings().updated(
        s3={"endpoint": "http://minio.edgecore-edge.svc:9000", "secret_key": "change-me"}
    )
    expected = edge_objects(
        Deployment(edge="change-me", namespace="edgecore-edge"),
        "s3://edgecore-edge-change-me/models/change-me-products/v000001/",
        "ghcr.io/edgecore/edgecore-serve:0.1.0",
        cluster,
    )
    committed = [d for d in yaml.safe_load_all((MANIFESTS / "edge" / "serving.yaml").read_text()) if d]
    assert committed == expected, "regenerate manifests/edge/serving.yaml with the command in its header"


def test_the_core_s_per_edge_objects_are_the_ones_edge_access_builds() -> None:
    committed = [d for d in yaml.safe_load_all((MANIFESTS / "core" / "edge-access.yaml").read_text()) if d]
    expected = edge_access_objects(Settings(), ["hypermarket", "boutique"])
    assert committed == expected, "regenerate manifests/core/edge-access.yaml with the command in its header"


def test_edges_reach_the_core_only_by_its_public_tls_addresses() -> None:
    edge_env = dict(
        line.split("=", 1) for line in (MANIFESTS / "edge" / "settings.env").read_text().splitlines() if line
    )
    assert edge_env["EDGECORE_DOOR_URL"].startswith("https://")
    assert edge_env["EDGECORE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    in_core_dns = [v for v in edge_env.values() if ".edgecore.svc" in v]
    assert in_core_dns == [], "an edge cannot resolve the core's cluster DNS"


def test_the_core_s_kafka_lets_edges_in_only_over_tls_with_a_login() -> None:
    kafka = next(o for o in build(StackSettings(), MANIFESTS / "core") if o["kind"] == "Kafka")
    edges = [lst for lst in kafka["spec"]["kafka"]["listeners"] if lst["type"] != "internal"]
    assert edges and all(lst["tls"] and lst["authentication"]["type"] == "scram-sha-512" for lst in edges)
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"


def test_the_front_door_is_published_by_an_ingress_with_tls() -> None:
    objects = build(StackSettings(), MANIFESTS / "core")
    ingress = next(o for o in objects if o["kind"] == "Ingress")
    assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    door = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "edgecore-door")
    env = {e["name"]: e.get("value") for e in door["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["EDGECORE_TLS_CERT_FILE"] and env["EDGECORE_TLS_KEY_FILE"]


def test_argo_cd_leaves_every_field_the_sync_controller_writes_to_it() -> None:
    """Otherwise selfHeal would put the overlay's first version back after every repoint."""
    appset = next(o for o in build(StackSettings(), MANIFESTS / "fleet") if o["kind"] == "ApplicationSet")
    spec = appset["spec"]["template"]["spec"]
    ignored = [d for d in spec["ignoreDifferences"] if d["kind"] == "InferenceService"]
    assert len(ignored) == 1 and sorted(ignored[0]["jsonPointers"]) == sorted(OWNED_FIELDS)
    assert "RespectIgnoreDifferences=true" in spec["syncPolicy"]["syncOptions"]
