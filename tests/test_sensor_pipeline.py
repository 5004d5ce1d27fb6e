"""The sensor DAG: telemetry uploaded at the core becomes a gated sensor model in the registry,
announced on Kafka, that the edge's scorer loads (kfp.local against the real stack)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict

from components.sensor_steps import ingest_telemetry
from edgecore.synthetic.telemetry import generate
from edgecore.telemetry_upload import upload_telemetry
from foundation.alarm_verdicts import VERDICTS_DIR, AlarmVerdict, VerdictBatch, read_verdicts
from foundation.errors import InvalidInput
from foundation.layout import TELEMETRY_DIR, Layout, sensor_model_name, telemetry_dataset
from foundation.registry import fetch_verified, known_versions, newest_version
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from foundation.telemetry import SENSORS, write_csv
from foundation.telemetry_versions import store_verdict_version
from pipelines.anomaly import anomaly_pipeline
from pipelines.results import sensor_evaluations
from pipelines.submit import compile_pipeline, run_local
from pipelines.training import S3_SECRET
from serving.anomaly import WindowScorer
from testkit.kafka import published as published_events
from testkit.training import env_for

EDGE = "plant-3"
NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def _telemetry(path: Path, machines: int = 2, hours: float = 48, faults: int = 6) -> Path:
    write_csv([generate(f"press-{i + 1}", hours, seed=40 + i, faults=faults) for i in range(machines)], path)
    return path


def test_an_upload_stores_each_machine_as_a_dataset_file_and_the_manifest_last(
    tmp_path: Path, iso_store: ObjectStore, iso_layout: Layout
) -> None:
    manifest = upload_telemetry(iso_store, iso_layout, _telemetry(tmp_path / "t.csv", hours=2), EDGE)

    assert (manifest.name, manifest.version) == (telemetry_dataset(EDGE), "v000001")
    assert sorted(manifest.files) == ["telemetry/press-1.csv", "telemetry/press-2.csv"]
    assert manifest.labels == list(SENSORS) and manifest.metadata["machines"] == ["press-1", "press-2"]
    assert iso_store.get_bytes(iso_layout.dataset_manifest(manifest.name, "v000001")) == manifest.to_bytes()


def test_an_export_that_does_not_parse_is_refused_before_a_version_is_claimed(
    tmp_path: Path, iso_store: ObjectStore, iso_layout: Layout
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,machine,temperature_c\n1,press-1,20\n")

    with pytest.raises(InvalidInput, match="no column"):
        upload_telemetry(iso_store, iso_layout, bad, EDGE)

    assert known_versions(iso_store, iso_layout.dataset_versions(telemetry_dataset(EDGE))) == []


def test_ingest_brings_every_version_s_verdicts_beside_its_readings(
    tmp_path: Path, iso_store: ObjectStore, iso_layout: Layout
) -> None:
    upload_telemetry(iso_store, iso_layout, _telemetry(tmp_path / "t.csv", hours=2), EDGE)
    verdict = AlarmVerdict(
        machine="press-1",
        window_id="w-1",
        start=1_767_226_000.0,
        end=1_767_226_690.0,
        verdict="dismissed",
        at=NOW,
    )
    body = VerdictBatch(verdicts=[verdict]).model_dump_json().encode()
    store_verdict_version(iso_store, iso_layout, body, [verdict], EDGE, "ab" * 32, "v000002")

    ingest_telemetry(iso_store, iso_layout, EDGE, [f"{telemetry_dataset(EDGE)}@.."], tmp_path / "out")

    [kept] = (tmp_path / "out" / VERDICTS_DIR).rglob("*.json")
    assert kept.parent.name == f"{telemetry_dataset(EDGE)}@v000002" and read_verdicts(kept.read_bytes()) == [
        verdict
    ]
    assert len(list((tmp_path / "out" / TELEMETRY_DIR).rglob("*.csv"))) == 2


def test_the_compiled_sensor_dag_reads_its_credentials_from_the_secret_and_publishes_behind_the_gate(
    tmp_path: Path,
) -> None:
    from kfp import components

    loaded = components.load_component_from_file(str(compile_pipeline(tmp_path / "s.yaml", anomaly_pipeline)))

    executors = MessageToDict(loaded.platform_spec.platforms["kubernetes"].deployment_spec)["executors"]
    assert executors["exec-sensor-ingest-op"]["secretAsEnv"][0]["secretName"] == S3_SECRET
    assert "secretAsEnv" not in executors["exec-sensor-train-op"]
    loop = loaded.pipeline_spec.components["comp-for-loop-1"].dag.tasks
    assert "sensor-evaluate-op-Output" in loop["condition-2"].trigger_policy.condition


@pytest.mark.slow
def test_telemetry_becomes_a_gated_sensor_model_that_is_announced_and_loads_at_the_edge(
    tmp_path: Path,
    isolated: Settings,
    iso_store: ObjectStore,
    iso_layout: Layout,
    monkeypatch: pytest.MonkeyPatch,
    unique: str,
) -> None:
    upload_telemetry(iso_store, iso_layout, _telemetry(tmp_path / "t.csv"), EDGE)
    for var, value in env_for(isolated).items():
        monkeypatch.setenv(var, value)

    run_local(
        tmp_path / "root",
        {"edges": [EDGE], "datasets": [f"{telemetry_dataset(EDGE)}@.."], "epochs": 8, "release": "r-7"},
        anomaly_pipeline,
    )

    evaluation = sensor_evaluations(tmp_path / "root")[EDGE]
    assert evaluation.passed and evaluation.recall is not None and evaluation.recall >= 0.5
    stored = newest_version(iso_store, iso_layout.models_prefix(sensor_model_name(EDGE)))
    assert stored is not None and stored.version == "v000001"
    assert stored.manifest.metadata["release"] == "r-7"
    assert stored.manifest.metadata["datasets"] == [f"{telemetry_dataset(EDGE)}@v000001"]
    fetch_verified(iso_store, stored, tmp_path / "edge")
    assert WindowScorer(tmp_path / "edge").spec.threshold == pytest.approx(evaluation.threshold)
    announced = published_events(isolated.kafka, f"t-{unique}")
    assert [(e.model, e.version) for e in announced] == [(sensor_model_name(EDGE), "v000001")]
