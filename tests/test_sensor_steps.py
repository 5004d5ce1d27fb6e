"""The sensor pipeline's steps on generated telemetry: windows split in time, a gate on labelled faults
and against the edge's model, and a version the edge's scorer loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.anomaly import alarmed_faults
from components.sensor_gate import Production, SensorGate, regressions
from components.sensor_steps import (
    EVALUATION_FILE,
    SensorEvaluation,
    evaluate_sensors,
    export_sensors,
    load_windows,
    prepare_telemetry,
    train_sensors,
)
from edgecore.synthetic.telemetry import generate
from foundation.errors import InvalidInput
from foundation.layout import TELEMETRY_DIR
from foundation.telemetry import write_csv
from serving.anomaly import WindowScorer

EDGE = "plant-7"


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two machines, two days each, six faults each, as ingest leaves them."""
    root = tmp_path_factory.mktemp("snapshot")
    folder = root / TELEMETRY_DIR / "plant-7-telemetry@v000001"
    folder.mkdir(parents=True)
    for i, machine in enumerate(("press-1", "press-2")):
        write_csv([generate(machine, 48, seed=20 + i, faults=6)], folder / f"{machine}.csv")
    return root


@pytest.fixture(scope="module")
def trained(snapshot: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    prepared, model = tmp_path_factory.mktemp("prepared"), tmp_path_factory.mktemp("trained")
    prepare_telemetry(snapshot, prepared)
    train_sensors(prepared, model, epochs=8, seed=0)
    return prepared, model


def test_each_machine_trains_on_its_earlier_normal_windows_and_is_tested_on_every_fault(
    snapshot: Path, tmp_path: Path
) -> None:
    figures = prepare_telemetry(snapshot, tmp_path)

    w, sensors = load_windows(tmp_path)
    assert sensors == ("temperature_c", "vibration_mm_s", "current_a", "pressure_bar")
    assert not w["train_y"].any() and not w["held_y"].any()
    assert figures["fault_windows"] == int(np.count_nonzero(w["test_y"])) > 0
    assert figures["train_windows"] > 2 * figures["held_windows"] > 0


def test_each_test_window_names_its_fault_and_the_faults_of_both_machines_are_told_apart(
    snapshot: Path, tmp_path: Path
) -> None:
    figures = prepare_telemetry(snapshot, tmp_path)

    w, _ = load_windows(tmp_path)
    assert np.array_equal(w["test_fault"] >= 0, w["test_y"] > 0)
    assert sorted(set(w["test_fault"][w["test_fault"] >= 0])) == list(range(figures["faults"]))
    assert 2 <= figures["faults"] <= 12  # six generated on each machine; faults in a row are one


def test_a_fault_counts_as_caught_only_where_the_alarm_would_be_raised() -> None:
    faults = np.array([-1, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    flagged = np.array([1, 1, 0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1], dtype=bool)

    assert alarmed_faults(flagged, faults, k=3, n=5) == {0, 2}  # 0: 3 of its 4; 2: 3 of its last 5
    assert alarmed_faults(flagged, faults, k=3, n=3) == set()


def test_a_candidate_that_alarms_on_another_fault_instead_of_one_the_edges_model_catches_is_refused() -> None:
    edge = Production(precision=0.9, recall=0.7, alarmed=frozenset({0}))

    reasons = regressions(0.9, 0.7, {1}, 2, edge, SensorGate())

    assert reasons == [
        "1 of 2 labelled faults the edge's current model alarms on raise no alarm"
        " (it alarms on 1, the candidate on 1)"
    ]


def test_a_candidate_that_flags_far_fewer_faulty_windows_is_refused_though_it_alarms_on_every_fault() -> None:
    edge = Production(precision=0.9, recall=0.9, alarmed=frozenset({0, 1}))

    reasons = regressions(0.9, 0.6, {0, 1}, 2, edge, SensorGate())

    assert reasons == ["recall 0.600 is far below the edge's current model's 0.900"]


def test_telemetry_too_short_for_a_window_is_refused_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "snapshot" / TELEMETRY_DIR / "x@v000001"
    folder.mkdir(parents=True)
    write_csv([generate("press-1", 0.1, seed=1)], folder / "press-1.csv")

    with pytest.raises(InvalidInput, match="no machine has enough readings"):
        prepare_telemetry(tmp_path / "snapshot", tmp_path / "prepared")


def test_a_model_of_normal_windows_passes_the_gate_and_the_edge_loads_its_version(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    prepared, model = trained

    evaluation = evaluate_sensors(prepared, model, None)
    manifest = export_sensors(prepared, model, evaluation, tmp_path / "v", EDGE, {"release": "r1"})

    assert evaluation.passed, evaluation.reasons
    assert evaluation.recall is not None and evaluation.recall >= 0.5
    assert set(evaluation.recall_by_label) <= {
        "spike",
        "level_shift",
        "stuck",
        "frequency_change",
        "degradation",
    }
    assert manifest.name == f"{EDGE}-sensors" and manifest.metadata["release"] == "r1"
    w, _ = load_windows(prepared)
    flagged = WindowScorer(tmp_path / "v").anomalous(w["test_x"], w["test_raw"])
    assert np.mean(flagged[w["test_y"] > 0]) == pytest.approx(evaluation.recall, abs=0.02)


@pytest.fixture(scope="module")
def served(
    trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[SensorEvaluation, Path]:
    """The trained model's evaluation, and the version the edge serves of it."""
    prepared, model = trained
    first = evaluate_sensors(prepared, model, None)
    folder = tmp_path_factory.mktemp("serving") / "v"
    export_sensors(prepared, model, first, folder, EDGE, {})
    return first, folder


def test_the_edges_model_is_scored_on_the_same_windows_and_a_candidate_behind_it_is_refused(
    trained: tuple[Path, Path], served: tuple[SensorEvaluation, Path]
) -> None:
    (prepared, model), (first, serving) = trained, served

    must_beat = evaluate_sensors(prepared, model, serving, SensorGate(max_regression=-0.05))

    assert first.recall is not None and first.precision is not None
    assert must_beat.production["recall"] == pytest.approx(first.recall, abs=0.02)
    assert must_beat.production["precision"] == pytest.approx(first.precision, abs=0.02)
    assert not must_beat.passed and any("edge's current model" in r for r in must_beat.reasons)


def test_a_candidate_whose_alarm_misses_a_fault_the_edges_model_catches_is_refused(
    trained: tuple[Path, Path], served: tuple[SensorEvaluation, Path]
) -> None:
    (prepared, model), (first, serving) = trained, served

    one_more = evaluate_sensors(prepared, model, serving, SensorGate(max_faults_lost=-1))

    assert first.faults_caught is not None and 0 < first.faults_caught <= first.faults
    assert one_more.production["faults_caught"] == first.faults_caught
    assert not one_more.passed
    assert one_more.reasons == [
        f"0 of {first.faults} labelled faults the edge's current model alarms on raise no alarm"
        f" (it alarms on {first.faults_caught}, the candidate on {first.faults_caught})"
    ]


def test_unlabelled_telemetry_trains_and_says_what_the_gate_could_not_check(tmp_path: Path) -> None:
    folder = tmp_path / "snapshot" / TELEMETRY_DIR / "x@v000001"
    folder.mkdir(parents=True)
    write_csv([generate("press-1", 24, seed=3)], folder / "press-1.csv")
    prepare_telemetry(tmp_path / "snapshot", tmp_path / "prepared")
    train_sensors(tmp_path / "prepared", tmp_path / "model", epochs=2)

    evaluation = evaluate_sensors(tmp_path / "prepared", tmp_path / "model", None)

    assert evaluation.passed and evaluation.recall is None
    assert evaluation.notes == ["no labelled fault: precision and recall not measured"]


def test_an_evaluation_reads_back_as_written(tmp_path: Path) -> None:
    evaluation = SensorEvaluation(0.5, None, 0.001, None, None, {}, {}, True, [], ["n"])

    evaluation.save(tmp_path / EVALUATION_FILE)

    assert SensorEvaluation.load(tmp_path / EVALUATION_FILE) == evaluation
