"""The InferenceService and ServingRuntime the predictor ships are valid against KServe's real CRDs.

Schemas come from the upstream CRDs in ``../shared/crds`` (skipped, with the reason,
when that folder is absent); Secret and ServiceAccount from the Kubernetes OpenAPI.
"""

from __future__ import annotations

import pytest

from foundation.settings import Settings
from serving.isvc import (
    MODEL_FORMAT,
    RUNTIME,
    Deployment,
    edge_objects,
    inference_service,
    s3_secret,
    serving_runtime,
)
from testkit.k8s_schemas import require_crds, validation_errors

URI = "s3://edgecore-edge-store-7/models/store-7-products/v000003/"


@pytest.fixture(autouse=True)
def crds() -> None:
    require_crds()


def test_every_object_for_an_edge_is_valid_against_its_schema(settings: Settings) -> None:
    objects = edge_objects(
        Deployment(edge="store-7"), URI, "registry.local/edgecore/predictor:0.1.0", settings
    )

    assert [o["kind"] for o in objects] == ["Secret", "ServiceAccount", "ServingRuntime", "InferenceService"]
    assert [e for o in objects for e in validation_errors(o)] == []


def test_inference_service_names_format_runtime_storage_and_service_account(settings: Settings) -> None:
    isvc = inference_service(Deployment(edge="store-7", service_account="s3-reader"), URI, settings)

    model = isvc["spec"]["predictor"]["model"]
    assert isvc["metadata"]["name"] == "store-7-products"
    assert model["modelFormat"]["name"] == MODEL_FORMAT
    assert model["runtime"] == RUNTIME
    assert model["storageUri"] == URI
    assert isvc["spec"]["predictor"]["serviceAccountName"] == "s3-reader"
    assert model["resources"]["limits"]["cpu"]


def test_runtime_supports_the_format_the_inference_service_asks_for(settings: Settings) -> None:
    runtime = serving_runtime("registry.local/edgecore/predictor:0.1.0")
    isvc = inference_service(Deployment(edge="store-7"), URI, settings)

    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert isvc["spec"]["predictor"]["model"]["modelFormat"]["name"] in formats
    assert isvc["spec"]["predictor"]["model"]["protocolVersion"] in runtime["spec"]["protocolVersions"]


def test_s3_secret_carries_kserve_s3_annotations(settings: Settings) -> None:
    annotations = s3_secret(Deployment(edge="store-7"), settings)["metadata"]["annotations"]

    assert annotations["serving.kserve.io/s3-endpoint"] == settings.s3.endpoint_url.split("://", 1)[1]
    assert annotations["serving.kserve.io/s3-usehttps"] in {"0", "1"}
    assert annotations["serving.kserve.io/s3-region"] == settings.s3.region


def test_a_non_s3_storage_uri_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="s3://"):
        inference_service(Deployment(edge="store-7"), "gs://elsewhere/model", settings)
