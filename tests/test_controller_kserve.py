"""The KServe target, driven through the stack's real Kubernetes API server.

The target connects as the edge overlay's ServiceAccount, so its Role is enforced; the
API server validates every write against the real KServe CRD, and ``KServeStandIn``
reports rollouts as KServe RawDeployment does (kserve#6081, kserve#4626).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from edge_sync.delivery.controller import SyncContext, reconcile, status
from edge_sync.delivery.targets import isvc
from edge_sync.delivery.targets.isvc import PREVIOUS_VERSION, REJECTED_VERSION, SYNCED_AT, VERSION
from edge_sync.delivery.targets.kserve import KServeTarget
from edgecore.stack.controlplane import ControlPlane
from foundation.errors import InvalidInput, PermanentError
from foundation.layout import edge_model_name
from foundation.storage.store import ObjectStore
from testkit.conditions import wait_for
from testkit.delivery import EdgeCluster, deliver

EDGE = "store-1"


def _two_versions(ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster) -> tuple[str, str]:
    v1 = deliver(store, ctx.layout, EDGE, "v000001").uri
    cluster.add_edge(EDGE, v1, **{VERSION: "v000001"})
    v2 = deliver(store, ctx.layout, EDGE, "v000002").uri
    return v1, v2


def _someone_patches(cluster: EdgeCluster, body: dict[str, object]) -> None:
    """Another writer (an operator, Argo CD, KServe) changes the InferenceService."""
    cluster.admin.patch_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", cluster.namespace, "inferenceservices", edge_model_name(EDGE), body
    )


def test_a_new_version_repoints_the_storage_uri_and_keeps_the_previous_in_annotations(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    v1, v2 = _two_versions(ctx, store, cluster)

    outcome = reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)

    assert (outcome.action, outcome.serving) == ("rolled-out", "v000002")
    assert cluster.storage_uri(EDGE) == v2
    notes = cluster.annotations(EDGE)
    assert notes[VERSION] == "v000002" and notes[PREVIOUS_VERSION] == "v000001" and SYNCED_AT in notes
    assert cluster.uri_changes(EDGE) == [v1, v2]
    assert ctx.metrics.value("edgecore_edge_sync_rollouts_total", edge=EDGE) == 1


def test_readiness_does_not_rest_on_observed_generation_which_kserve_copies_from_its_deployment(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    _, v2 = _two_versions(ctx, store, cluster)

    outcome = reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)

    obj = cluster.get(EDGE)
    assert obj["status"]["observedGeneration"] != obj["metadata"]["generation"]  # kserve#6081
    assert (outcome.action, cluster.storage_uri(EDGE)) == ("rolled-out", v2)


def test_a_repoint_made_by_someone_else_after_the_read_is_seen_not_overwritten(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    """The resourceVersion precondition: the API server answers 409 and the target reads afresh."""
    _, v2 = _two_versions(ctx, store, cluster)
    v3 = deliver(store, ctx.layout, EDGE, "v000003").uri
    target = cluster.target(EDGE)
    target.state()
    _someone_patches(cluster, {"spec": {"predictor": {"model": {"storageUri": v3}}}})

    target.apply(v2, "v000002")

    assert cluster.storage_uri(EDGE) == v2
    assert cluster.annotations(EDGE)[PREVIOUS_VERSION] == "v000003"


def test_writes_landing_between_each_read_and_the_patch_are_read_again_not_failed(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KServe writes status often: a 409 after a fresh read is read afresh again."""
    _, v2 = _two_versions(ctx, store, cluster)
    target = cluster.target(EDGE)
    read, writes_between = target.get, iter(range(3))

    def read_then_someone_writes() -> dict[str, object]:
        obj = read()
        touched = next(writes_between, None)
        if touched is not None:
            _someone_patches(cluster, {"metadata": {"annotations": {"example.com/touched": str(touched)}}})
        return obj

    monkeypatch.setattr(target, "get", read_then_someone_writes)

    target.apply(v2, "v000002")

    assert cluster.storage_uri(EDGE) == v2
    assert cluster.annotations(EDGE)["example.com/touched"] == "2"


def _answered(kube: ControlPlane, code: str) -> float:
    """Answers with ``code`` the API server has given on InferenceServices since it started."""
    with kube.http() as http:
        text = http.get("/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("apiserver_request_total{")
        and 'resource="inferenceservices"' in line
        and f'code="{code}"' in line
    )


def _after_the_answer(
    target: KServeTarget, monkeypatch: pytest.MonkeyPatch, write: Callable[[], None]
) -> None:
    """``write`` lands once the new version has answered, before the target stamps the sync."""
    await_ready = target._await_ready

    def answered_then_written(*args: Any, **kwargs: Any) -> Any:
        verdict = await_ready(*args, **kwargs)
        write()
        return verdict

    monkeypatch.setattr(target, "_await_ready", answered_then_written)


def test_kserve_writing_status_before_the_stamp_costs_the_confirmation_no_conflict(
    ctx: SyncContext,
    store: ObjectStore,
    cluster: EdgeCluster,
    kube: ControlPlane,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stamp's precondition is the spec's generation, which status writes leave alone."""
    _, v2 = _two_versions(ctx, store, cluster)
    target = cluster.target(EDGE)
    before: dict[str, float] = {}

    def kserve_writes_status() -> None:
        cluster.admin.patch_namespaced_custom_object_status(
            "serving.kserve.io",
            "v1beta1",
            cluster.namespace,
            "inferenceservices",
            edge_model_name(EDGE),
            {"status": {"url": "http://store-1-products.example.com"}},
        )
        before.update({code: _answered(kube, code) for code in ("409", "422")})

    _after_the_answer(target, monkeypatch, kserve_writes_status)

    target.apply(v2, "v000002")

    assert SYNCED_AT in cluster.annotations(EDGE)
    assert {code: _answered(kube, code) for code in before} == before  # no conflict, no failed test


def test_a_spec_changed_after_the_version_answered_fails_the_stamps_test_and_is_read_again(
    ctx: SyncContext,
    store: ObjectStore,
    cluster: EdgeCluster,
    kube: ControlPlane,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, v2 = _two_versions(ctx, store, cluster)
    target = cluster.target(EDGE)
    failed_tests = _answered(kube, "422")
    _after_the_answer(
        target, monkeypatch, lambda: _someone_patches(cluster, {"spec": {"predictor": {"minReplicas": 2}}})
    )

    target.apply(v2, "v000002")

    obj = cluster.get(EDGE)
    assert _answered(kube, "422") == failed_tests + 1
    assert obj["spec"]["predictor"]["minReplicas"] == 2
    assert isvc.annotations(obj)[VERSION] == "v000002" and SYNCED_AT in isvc.annotations(obj)


def test_repeating_a_sync_writes_nothing(ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster) -> None:
    _two_versions(ctx, store, cluster)
    reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)
    writes = cluster.writes(EDGE)
    resource_version = cluster.get(EDGE)["metadata"]["resourceVersion"]

    outcome = reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)

    assert outcome.action == "up-to-date"
    assert cluster.writes(EDGE) == writes
    assert cluster.get(EDGE)["metadata"]["resourceVersion"] == resource_version


def test_state_is_read_back_from_the_inference_service_by_a_new_target(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    _, v2 = _two_versions(ctx, store, cluster)
    reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)

    fresh = cluster.target(EDGE)  # a restarted controller: new client, nothing in memory

    current, previous = fresh.current(), fresh.previous()
    assert current is not None and (current.version, current.uri) == ("v000002", v2)
    assert current.synced_at is not None
    assert previous is not None and previous.version == "v000001"


def test_a_canary_takes_its_share_first_and_is_then_promoted(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    v1 = deliver(store, ctx.layout, EDGE, "v000001").uri
    cluster.add_edge(EDGE, v1, **{VERSION: "v000001", "serving.kserve.io/deploymentMode": "Serverless"})
    v2 = deliver(store, ctx.layout, EDGE, "v000002").uri

    reconcile(cluster.spec(EDGE), cluster.target(EDGE, canary_percent=20), ctx)

    assert cluster.kserve.history(edge_model_name(EDGE)) == [(v1, None), (v2, 20), (v2, None)]


@pytest.mark.parametrize("mode", ["RawDeployment", "Standard"])
def test_a_canary_on_a_raw_deployment_is_refused_rather_than_a_split_that_does_nothing(
    mode: str, ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    v1 = deliver(store, ctx.layout, EDGE, "v000001").uri
    cluster.add_edge(EDGE, v1, **{VERSION: "v000001", "serving.kserve.io/deploymentMode": mode})
    deliver(store, ctx.layout, EDGE, "v000002")

    with pytest.raises(InvalidInput, match="Serverless"):
        reconcile(cluster.spec(EDGE), cluster.target(EDGE, canary_percent=20), ctx)

    assert cluster.storage_uri(EDGE) == v1


def test_a_version_that_does_not_become_ready_is_rolled_back_to_the_previous_uri(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    v1, v2 = _two_versions(ctx, store, cluster)
    cluster.kserve.fail_uris.add(v2)

    outcome = reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)

    assert (outcome.action, outcome.serving) == ("rolled-back", "v000001")
    assert cluster.storage_uri(EDGE) == v1
    assert cluster.annotations(EDGE)[REJECTED_VERSION] == "v000002"
    assert ctx.metrics.value("edgecore_edge_sync_rollbacks_total", edge=EDGE) == 1


def test_a_rolled_back_version_is_not_tried_again(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    _, v2 = _two_versions(ctx, store, cluster)
    cluster.kserve.fail_uris.add(v2)
    reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)
    writes = cluster.writes(EDGE)

    outcome = reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)

    assert outcome.action == "skipped-rejected"
    assert cluster.writes(EDGE) == writes


def test_a_fix_for_a_version_that_fails_is_not_refused_for_the_failure_that_stood_before_it(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    v1 = deliver(store, ctx.layout, EDGE, "v000001").uri
    cluster.kserve.fail_uris.add(v1)  # the serving version cannot load: Ready is False
    cluster.add_edge(EDGE, v1, **{VERSION: "v000001"})
    wait_for(lambda: isvc.condition(cluster.get(EDGE), "Ready").get("status") == "False", 30)
    v2 = deliver(store, ctx.layout, EDGE, "v000002").uri

    outcome = reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)

    assert (outcome.action, cluster.storage_uri(EDGE)) == ("rolled-out", v2)


def test_a_rollout_that_times_out_is_rolled_back(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    v1, _ = _two_versions(ctx, store, cluster)
    cluster.kserve.hold.set()  # the new pods never come up; Ready stays True from before (kserve#4626)

    outcome = reconcile(cluster.spec(EDGE), cluster.target(EDGE, ready_timeout_s=1.0), ctx)

    assert outcome.action == "rolled-back" and "v000002 not serving within" in outcome.detail
    assert cluster.storage_uri(EDGE) == v1


def test_the_next_version_after_a_rejected_one_is_rolled_out(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    _, v2 = _two_versions(ctx, store, cluster)
    cluster.kserve.fail_uris.add(v2)
    reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)
    v3 = deliver(store, ctx.layout, EDGE, "v000003").uri

    outcome = reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)

    assert (outcome.action, outcome.serving) == ("rolled-out", "v000003")
    assert cluster.storage_uri(EDGE) == v3


def test_the_api_server_refuses_what_the_crd_schema_refuses(cluster: EdgeCluster) -> None:
    """The validation is live: a patch KServe's schema rejects is answered 422."""
    cluster.add_edge(EDGE, "s3://bucket/models/x/v000001/")
    api = client.CustomObjectsApi(cluster.target(EDGE)._api.api_client)
    with pytest.raises(client.ApiException) as caught:
        api.patch_namespaced_custom_object(
            "serving.kserve.io",
            "v1beta1",
            cluster.namespace,
            "inferenceservices",
            edge_model_name(EDGE),
            {"spec": {"predictor": {"canaryTrafficPercent": "twenty"}}},
        )
    assert caught.value.status == 422
    assert "canaryTrafficPercent" in json.loads(caught.value.body)["message"]


def test_a_missing_inference_service_is_a_clear_permanent_error(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    deliver(store, ctx.layout, EDGE, "v000001")

    with pytest.raises(PermanentError, match=f"{cluster.namespace}/{edge_model_name(EDGE)}.*404"):
        reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)


def test_the_api_server_refuses_fields_the_crd_schema_does_not_know(cluster: EdgeCluster) -> None:
    cluster.add_edge(EDGE, "s3://bucket/models/x/v000001/")
    api = client.CustomObjectsApi(cluster.target(EDGE)._api.api_client)
    with pytest.raises(client.ApiException) as caught:
        api.patch_namespaced_custom_object(
            "serving.kserve.io",
            "v1beta1",
            cluster.namespace,
            "inferenceservices",
            edge_model_name(EDGE),
            {"spec": {"predictor": {"model": {"storageURI": "s3://typo/"}}}},
            field_validation="Strict",  # as the target patches
        )
    assert caught.value.status == 422


def test_an_explicit_rollback_restores_the_previous_version_which_then_stays(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    v1, _ = _two_versions(ctx, store, cluster)
    reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)

    cluster.target(EDGE).rollback()
    outcome = reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)

    assert cluster.storage_uri(EDGE) == v1
    assert cluster.annotations(EDGE)[REJECTED_VERSION] == "v000002"
    assert (outcome.action, outcome.serving) == ("pinned", "v000001")
    assert ctx.metrics.value("edgecore_edge_sync_pinned", edge=EDGE) == 1
    assert ctx.metrics.value("edgecore_edge_sync_versions_behind", edge=EDGE) == 0
    assert ctx.metrics.value("edgecore_edge_sync_lag_seconds", edge=EDGE) == 0
    assert status(cluster.spec(EDGE), cluster.target(EDGE), ctx).pinned


def test_an_unpinned_edge_takes_the_next_version_but_not_the_one_rolled_back_from(
    ctx: SyncContext, store: ObjectStore, cluster: EdgeCluster
) -> None:
    _two_versions(ctx, store, cluster)
    reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)
    cluster.target(EDGE).rollback()

    cluster.target(EDGE).unpin()
    again = reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)
    v3 = deliver(store, ctx.layout, EDGE, "v000003").uri
    after = reconcile(cluster.spec(EDGE), cluster.target(EDGE), ctx)

    assert (again.action, again.serving) == ("skipped-rejected", "v000001")
    assert (after.action, cluster.storage_uri(EDGE)) == ("rolled-out", v3)
