"""Kubernetes objects that run the edge predictor under KServe.

* a ``ServingRuntime`` (serving.kserve.io/v1alpha1) for this predictor's image: it
  declares the ``edgecore-litert`` model format, V1 and V2 protocols, and runs
  ``python -m serving.server`` on the model KServe's storage initializer mounted at
  ``/mnt/models``;
* an ``InferenceService`` (serving.kserve.io/v1beta1) per edge: the model format, the
  runtime, the version's ``storageUri`` and a service account whose S3 secret carries
  KServe's ``serving.kserve.io/s3-*`` annotations (the storage initializer reads the
  endpoint from them), plus resources;
* that ``Secret`` and ``ServiceAccount``; the account also names the image pull secret the kubelet
  pulls modelcars with (``oci://`` storage URIs, through the core's front door).

Builders return plain dicts (what ``kubectl apply`` and the Kubernetes client take).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from foundation.layout import check_name, edge_model_name
from foundation.settings import Settings

MODEL_FORMAT = "edgecore-litert"
MODEL_FORMAT_VERSION = "1"
RUNTIME = "edgecore-predictor"
MODEL_MOUNT = "/mnt/models"
HTTP_PORT = 8080

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Resources:
    cpu_request: str = "500m"
    memory_request: str = "512Mi"
    cpu_limit: str = "1"
    memory_limit: str = "1Gi"

    def spec(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


@dataclass(frozen=True)
class Deployment:
    """Where and how one edge's predictor runs."""

    edge: str
    namespace: str = "edgecore"
    service_account: str = "edgecore-s3"
    secret: str = "edgecore-s3"
    pull_secret: str = "edgecore-door-pull"
    """The edge's login at the front door as a docker-registry Secret, made outside git: how the kubelet
    pulls a modelcar (an ``oci://`` storage URI); unused while versions come from s3://."""
    resources: Resources = field(default_factory=Resources)
    min_replicas: int = 1


def serving_runtime(image: str, namespace: str = "edgecore") -> Manifest:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": RUNTIME, "namespace": check_name(namespace, "namespace")},
        "spec": {
            "annotations": {
                "prometheus.kserve.io/port": str(HTTP_PORT),
                "prometheus.kserve.io/path": "/metrics",
            },
            "supportedModelFormats": [
                {"name": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION, "autoSelect": True, "priority": 1}
            ],
            "protocolVersions": ["v1", "v2"],
            "containers": [
                {
                    "name": "kserve-container",
                    "image": image,
                    "command": ["python", "-m", "serving.server"],
                    "args": ["--model-uri", MODEL_MOUNT, "--http-port", str(HTTP_PORT)],
                    # the kubelet and the Service reach the pod's own address, never loopback: the
                    # server binds it (EDGECORE_SERVER_HOST), given by Kubernetes, not every address
                    "env": [
                        {
                            "name": "EDGECORE_SERVER_HOST",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        }
                    ],
                    "ports": [{"containerPort": HTTP_PORT, "protocol": "TCP"}],
                    "readinessProbe": {
                        "httpGet": {"path": "/v2/health/ready", "port": HTTP_PORT},
                        "periodSeconds": 5,
                    },
                    "resources": Resources().spec(),
                }
            ],
        },
    }


def inference_service(deployment: Deployment, storage_uri: str, settings: Settings) -> Manifest:
    """The edge's InferenceService serving the version at ``storage_uri``."""
    if urlparse(storage_uri).scheme not in ("s3", "oci"):
        raise ValueError(f"storageUri must be an s3:// prefix or an oci:// modelcar, got {storage_uri!r}")
    secret_ref = deployment.secret
    env = [
        {"name": "EDGECORE_S3_ENDPOINT", "value": settings.s3.endpoint_url},
        {"name": "EDGECORE_S3_REGION", "value": settings.s3.region},
        {"name": "EDGECORE_EDGE_BUCKET_PREFIX", "value": settings.buckets.edge_prefix},
        {"name": "EDGECORE_IMAGE_SIZE", "value": str(settings.images.size)},
        {"name": "EDGECORE_CONFIDENCE_THRESHOLD", "value": str(settings.serving.confidence_threshold)},
        {"name": "EDGECORE_STATE_DIR", "value": "/tmp/edgecore"},
        {
            "name": "EDGECORE_S3_ACCESS_KEY",
            "valueFrom": {"secretKeyRef": {"name": secret_ref, "key": "AWS_ACCESS_KEY_ID"}},
        },
        {
            "name": "EDGECORE_S3_SECRET_KEY",
            "valueFrom": {"secretKeyRef": {"name": secret_ref, "key": "AWS_SECRET_ACCESS_KEY"}},
        },
    ]
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": edge_model_name(deployment.edge),
            "namespace": check_name(deployment.namespace, "namespace"),
            "labels": {"edgecore.io/edge": deployment.edge},
            "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"},
        },
        "spec": {
            "predictor": {
                "minReplicas": deployment.min_replicas,
                "serviceAccountName": deployment.service_account,
                "model": {
                    "modelFormat": {"name": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION},
                    "runtime": RUNTIME,
                    "protocolVersion": "v2",
                    "storageUri": storage_uri,
                    "args": ["--edge", deployment.edge],
                    "env": env,
                    "resources": deployment.resources.spec(),
                },
            }
        },
    }


def s3_secret(deployment: Deployment, settings: Settings) -> Manifest:
    """The S3 credentials, annotated the way KServe's storage initializer reads an endpoint."""
    endpoint = urlparse(settings.s3.endpoint_url)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": deployment.secret,
            "namespace": deployment.namespace,
            "annotations": {
                "serving.kserve.io/s3-endpoint": endpoint.netloc,
                "serving.kserve.io/s3-usehttps": "1" if endpoint.scheme == "https" else "0",
                "serving.kserve.io/s3-region": settings.s3.region,
                "serving.kserve.io/s3-verifyssl": "1" if endpoint.scheme == "https" else "0",
                "serving.kserve.io/s3-useanoncredential": "false",
            },
        },
        "type": "Opaque",
        "stringData": {
            "AWS_ACCESS_KEY_ID": settings.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": settings.s3.secret_key.get_secret_value(),
        },
    }


def service_account(deployment: Deployment) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": deployment.service_account, "namespace": deployment.namespace},
        "secrets": [{"name": deployment.secret}],
        "imagePullSecrets": [{"name": deployment.pull_secret}],
    }


def edge_objects(deployment: Deployment, storage_uri: str, image: str, settings: Settings) -> list[Manifest]:
    """Everything one edge needs, in apply order."""
    return [
        s3_secret(deployment, settings),
        service_account(deployment),
        serving_runtime(image, deployment.namespace),
        inference_service(deployment, storage_uri, settings),
    ]
