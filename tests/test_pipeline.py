"""The training DAG: compiled spec, and whole local runs with kfp.local against the real stack."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict

from edgecore.synthetic.generator import generate
from edgecore.synthetic.upload import upload_folder
from foundation.errors import NotFound
from foundation.layout import Layout, edge_model_name
from foundation.manifest import Manifest
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from pipelines.submit import compile_pipeline, run_local
from pipelines.training import S3_SECRET
from testkit.kafka import published as published_events
from testkit.training import env_for


def test_the_compiled_yaml_loads_back_with_the_kfp_sdk_and_carries_secrets_retries_and_caching(
    tmp_path: Path,
) -> None:
    from kfp import components

    path = compile_pipeline(tmp_path / "training.yaml")
    loaded = components.load_component_from_file(str(path))
    assert {"edges", "datasets", "epochs", "min_accuracy", "max_regression"} <= set(
        loaded.component_spec.inputs or {}
    )
    spec = loaded.pipeline_spec
    executors = MessageToDict(loaded.platform_spec.platforms["kubernetes"].deployment_spec)["executors"]
    for io_step in ("exec-ingest-op", "exec-publish-op"):
        secret = executors[io_step]["secretAsEnv"][0]
        assert secret["secretName"] == S3_SECRET and {e["envVar"] for e in secret["keyToEnv"]} >= {
            "EDGECORE_S3_ACCESS_KEY",
            "EDGECORE_S3_SECRET_KEY",
        }
    assert "secretAsEnv" not in executors["exec-train-op"]
    loop = spec.components["comp-for-loop-1"].dag.tasks
    assert (
        not loop["ingest-op"].caching_options.enable_cache
        and loop["ingest-op"].retry_policy.max_retry_count == 3
        and loop["ingest-op"].retry_policy.backoff_duration.seconds == 30  # a local run's 1 s is its own
    )
    assert loop["train-op"].caching_options.enable_cache and not loop["train-op"].retry_policy.max_retry_count
    assert "evaluate-op-Output" in loop["condition-2"].trigger_policy.condition
    assert S3_SECRET not in path.read_text().split("platforms:")[0]  # no credential in the DAG itself


def _published(store: ObjectStore, layout: Layout, edge: str) -> list[str]:
    prefix = layout.models_prefix(edge_model_name(edge))
    try:
        return sorted(store.list_prefixes(prefix))
    except NotFound:  # the registry bucket was never created
        return []


@pytest.mark.slow
def test_the_whole_dag_trains_gates_and_publishes_one_model_per_edge(
    tmp_path: Path,
    isolated: Settings,
    iso_store: ObjectStore,
    iso_layout: Layout,
    monkeypatch: pytest.MonkeyPatch,
    unique: str,
) -> None:
    generate(tmp_path / "photos", seed=11, images_per_product=30)
    for edge in ("hypermarket", "boutique"):
        upload_folder(iso_store, iso_layout, tmp_path / "photos" / edge, edge)
    for var, value in env_for(isolated).items():
        monkeypatch.setenv(var, value)
    run = run_local(
        tmp_path / "root",
        {
            "edges": ["hypermarket", "boutique"],
            "datasets": ["hypermarket", "boutique"],
            "epochs": 25,
            "min_accuracy": 0.9,
            "release": "run-for-both-edges",
        },
    )
    published = []
    for edge in ("hypermarket", "boutique"):
        model = edge_model_name(edge)
        manifest = Manifest.from_bytes(
            iso_store.get_bytes(iso_layout.model_manifest(model, "v000001")), model
        )
        assert manifest.metrics["accuracy"] >= 0.9
        assert manifest.metadata["datasets"] == ["hypermarket@v000001", "boutique@v000001"]
        assert manifest.metadata["release"] == "run-for-both-edges"  # one release, rolled out in waves
        published.append(model)
    assert {step["task"] for step in run.steps} >= {"ingest-op", "prepare-op", "train-op", "publish-op"}
    assert sorted(e.model for e in published_events(isolated.kafka, f"t-{unique}")) == sorted(published)


@pytest.mark.slow
def test_a_run_on_shuffled_labels_is_stopped_by_the_gate_and_nothing_is_published(
    tmp_path: Path,
    isolated: Settings,
    iso_store: ObjectStore,
    iso_layout: Layout,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generate(tmp_path / "photos", seed=12, images_per_product=30, edges=["boutique"])
    source = tmp_path / "photos" / "boutique"
    photos = sorted(source.glob("*/*.jpg"))
    labels = [p.parent.name for p in photos]
    random.Random(0).shuffle(labels)
    shuffled = tmp_path / "shuffled"
    for photo, label in zip(photos, labels, strict=True):
        (shuffled / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, shuffled / label / f"{photo.parent.name}-{photo.name}")
    shutil.copy(source / "catalogue.json", shuffled / "catalogue.json")
    upload_folder(iso_store, iso_layout, shuffled, "boutique")
    for var, value in env_for(isolated).items():
        monkeypatch.setenv(var, value)
    run = run_local(tmp_path / "root", {"edges": ["boutique"], "datasets": ["boutique"], "epochs": 8})
    tasks = {step["task"] for step in run.steps}
    assert "evaluate-op" in tasks and "publish-op" not in tasks
    assert _published(iso_store, iso_layout, "boutique") == []
    assert not iso_store.exists(iso_layout.model_versions(edge_model_name("boutique")).claim("v000001"))


def test_a_run_naming_a_missing_dataset_fails_at_ingest(
    tmp_path: Path, isolated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing step process still exits non-zero (steps skip interpreter teardown only on success)."""
    for var, value in env_for(isolated).items():
        monkeypatch.setenv(var, value)

    with pytest.raises(RuntimeError, match="ingest-op"):
        run_local(tmp_path / "root", {"edges": ["boutique"], "datasets": ["no-such-dataset"], "epochs": 1})
