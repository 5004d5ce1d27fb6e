"""Every name a workload or a training run reads resolves to an object shipped or documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict

from edgecore.kustomize import build
from edgecore.stack.settings import StackSettings
from foundation.settings import Settings
from pipelines.submit import compile_pipeline

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"
MADE_OUTSIDE_GIT = {
    "core": {"edgecore-door-tls", "edgecore-door-tokens"},
    "edge": {"edgecore-edge-credentials", "edgecore-core-ca", "edgecore-gateway-tokens"},
}
"""The Secrets each overlay's kustomization (or door.yaml) says are made by hand, never in git."""


def rendered(overlay: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in build(StackSettings(), MANIFESTS / overlay)}


def keys(obj: dict[str, Any]) -> set[str]:
    return set(obj.get("data") or {}) | set(obj.get("stringData") or {})


def pod_specs(objects: dict[tuple[str, str], dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for (kind, name), obj in objects.items():
        spec = obj.get("spec", {})
        template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
        if kind in ("Deployment", "Job", "CronJob", "StatefulSet") and template:
            found.append((f"{kind} {name}", template["spec"]))
    return found


def references(pod: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(kind, name, key or None) of every ConfigMap, Secret and ServiceAccount a pod names."""
    refs: list[tuple[str, str, str | None]] = []
    if pod.get("serviceAccountName"):
        refs.append(("ServiceAccount", pod["serviceAccountName"], None))
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        for source in container.get("envFrom", []):
            refs += [("ConfigMap", source[r]["name"], None) for r in ("configMapRef",) if r in source]
            refs += [("Secret", source[r]["name"], None) for r in ("secretRef",) if r in source]
        for env in container.get("env", []):
            value = env.get("valueFrom", {})
            if "configMapKeyRef" in value:
                refs.append(("ConfigMap", value["configMapKeyRef"]["name"], value["configMapKeyRef"]["key"]))
            if "secretKeyRef" in value:
                refs.append(("Secret", value["secretKeyRef"]["name"], value["secretKeyRef"]["key"]))
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            refs.append(("ConfigMap", volume["configMap"]["name"], None))
        if "secret" in volume:
            refs.append(("Secret", volume["secret"]["secretName"], None))
        if "persistentVolumeClaim" in volume:
            refs.append(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], None))
    return refs


@pytest.mark.parametrize("overlay", sorted(MADE_OUTSIDE_GIT))
def test_every_object_and_key_a_workload_reads_is_rendered_or_made_outside_git(overlay: str) -> None:
    objects = rendered(overlay)
    missing = []
    for workload, pod in pod_specs(objects):
        for kind, name, key in references(pod):
            if kind == "Secret" and name in MADE_OUTSIDE_GIT[overlay]:
                continue
            found = objects.get((kind, name))
            if found is None or (key is not None and key not in keys(found)):
                missing.append(f"{workload}: {kind} {name}" + (f" key {key}" if key else ""))
    assert missing == []


def executors(folder: Path) -> dict[str, Any]:
    """Each step's Kubernetes settings in the compiled pipeline (secrets, config maps as env)."""
    from kfp import components

    loaded = components.load_component_from_file(str(compile_pipeline(folder / "training.yaml")))
    found: dict[str, Any] = MessageToDict(loaded.platform_spec.platforms["kubernetes"].deployment_spec)
    return dict(found["executors"])


def test_every_secret_and_config_map_key_a_training_run_reads_is_in_the_kfp_run_overlay(
    tmp_path: Path,
) -> None:
    objects = rendered("kfp-run")
    wanted = set()
    for executor in executors(tmp_path).values():
        for secret in executor.get("secretAsEnv", []):
            wanted |= {("Secret", secret["secretName"], k["secretKey"]) for k in secret["keyToEnv"]}
        for config in executor.get("configMapAsEnv", []):
            wanted |= {("ConfigMap", config["configMapName"], k["configMapKey"]) for k in config["keyToEnv"]}

    missing = sorted(w for w in wanted if w[2] not in keys(objects.get((w[0], w[1]), {})))

    assert wanted and missing == []


def test_what_a_training_run_reads_from_the_kfp_run_overlay_is_valid_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The values, under the variables the compiled pipeline sets, load as the steps load them."""
    import base64

    objects = rendered("kfp-run")
    for executor in executors(tmp_path).values():
        for secret in executor.get("secretAsEnv", []):
            data = objects[("Secret", secret["secretName"])]["data"]
            for k in secret["keyToEnv"]:
                monkeypatch.setenv(k["envVar"], base64.b64decode(data[k["secretKey"]]).decode())
        for config in executor.get("configMapAsEnv", []):
            data = objects[("ConfigMap", config["configMapName"])]["data"]
            for k in config["keyToEnv"]:
                monkeypatch.setenv(k["envVar"], data[k["configMapKey"]])

    settings = Settings()

    assert settings.s3.endpoint_url == "http://minio.edgecore.svc:9000"
    assert settings.kafka.bootstrap_servers == "edgecore-kafka-bootstrap.edgecore.svc:9092"
    assert settings.buckets.training == "edgecore-training"


def kserve_predictor_service_labels(isvc: dict[str, Any]) -> dict[str, str]:
    """The labels KServe (RawDeployment) gives an InferenceService's predictor Service."""
    own = isvc["metadata"].get("labels", {})
    return {**own, "serving.kserve.io/inferenceservice": isvc["metadata"]["name"], "component": "predictor"}


def test_every_service_monitor_selects_a_service_of_its_namespace() -> None:
    monitors = [
        o for o in build(StackSettings(), MANIFESTS / "observability") if o["kind"] == "ServiceMonitor"
    ]
    services = []
    for overlay in ("core", "edge"):
        for obj in build(StackSettings(), MANIFESTS / overlay):
            labels = obj["metadata"].get("labels", {})
            if obj["kind"] == "InferenceService":
                labels = kserve_predictor_service_labels(obj)
            if obj["kind"] in ("Service", "InferenceService"):
                services.append((obj["metadata"]["namespace"], labels))

    def selects(monitor: dict[str, Any]) -> bool:
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        namespace = monitor["metadata"]["namespace"]
        return any(ns == namespace and wanted <= labels.items() for ns, labels in services)

    assert monitors and [m["metadata"]["name"] for m in monitors if not selects(m)] == []
    assert all(m["metadata"]["labels"].get("release") for m in monitors)
