"""The sensor model at the edge: a real autoencoder exported to LiteRT, windows scored, K-of-N alarms.

The model is trained here, in seconds, on generated telemetry (``edgecore.synthetic``),
exported as a version folder the way the pipeline's export writes one, and scored through
the LiteRT interpreter the edge runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.anomaly import (
    reconstruction_errors,
)
from foundation.errors import IntegrityError, InvalidInput
from foundation.layout import MANIFEST
from foundation.manifest import Manifest
from foundation.sensor_model import texture_features
from foundation.telemetry import SENSORS
from serving.alarms import Alarms
from serving.anomaly import WindowScorer
from testkit.sensors import ExportedSensorModel, export_sensor_model_for


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> ExportedSensorModel:
    return export_sensor_model_for("press-1", tmp_path_factory.mktemp("sensor-model") / "v000001")


def test_the_edge_scores_a_window_as_training_did(exported: ExportedSensorModel) -> None:
    scorer = WindowScorer(exported.folder)

    at_edge = scorer.errors(exported.x)
    in_training = reconstruction_errors(exported.keras, exported.spec.normalisation.apply(exported.x))

    np.testing.assert_allclose(at_edge, in_training, rtol=1e-3, atol=1e-6)


def test_windows_over_the_threshold_are_the_faulty_ones_mostly(exported: ExportedSensorModel) -> None:
    flagged = WindowScorer(exported.folder).anomalous(exported.x)

    faulty = exported.labels > 0
    assert flagged.any() and (flagged & faulty).sum() / flagged.sum() >= 0.8


def test_the_version_folder_lists_every_file_the_edge_loads(exported: ExportedSensorModel) -> None:
    manifest = Manifest.from_bytes((exported.folder / MANIFEST).read_bytes(), "export")

    assert {"model.tflite", "sensor_model.json"} <= set(manifest.files)
    assert manifest.labels == list(SENSORS) and manifest.metadata["use_case"] == "sensors"


def test_a_window_of_the_wrong_shape_is_refused_saying_what_was_expected(
    exported: ExportedSensorModel,
) -> None:
    with pytest.raises(InvalidInput, match=r"expected \(n, 30, 4\)"):
        WindowScorer(exported.folder).errors(np.zeros((2, 20, 4), np.float32))


def test_a_window_with_a_missing_reading_is_refused(exported: ExportedSensorModel) -> None:
    window = exported.x[:1].copy()
    window[0, 3, 1] = np.nan

    with pytest.raises(InvalidInput, match="missing"):
        WindowScorer(exported.folder).errors(window)


def test_a_description_that_disagrees_with_the_flatbuffer_is_refused_at_load(
    exported: ExportedSensorModel, tmp_path: Path
) -> None:
    (tmp_path / "model.tflite").write_bytes((exported.folder / "model.tflite").read_bytes())
    exported.spec.model_copy(update={"window": 20}).save(tmp_path)

    with pytest.raises(IntegrityError, match="describes windows of"):
        WindowScorer(tmp_path)


def test_an_alarm_is_raised_once_when_k_of_the_last_n_windows_are_anomalous() -> None:
    alarms = Alarms(k=3, n=5)

    changes = [alarms.observe("press-1", flag, 1.0) for flag in (True, False, True, True, True, True)]

    raised = [c for c in changes if c is not None]
    assert len(raised) == 1 and raised[0].raised and changes[3] is raised[0]
    assert alarms.raised() == ["press-1"]


def test_fewer_than_k_anomalous_windows_raise_nothing() -> None:
    alarms = Alarms(k=3, n=5)

    changes = [
        alarms.observe("press-1", flag, 1.0) for flag in (True, False, False, True, False, False, False)
    ]

    assert changes == [None] * 7


def test_an_alarm_clears_once_none_of_the_last_n_windows_is_anomalous() -> None:
    alarms = Alarms(k=2, n=3)
    for flag in (True, True, False, False):
        alarms.observe("press-1", flag, 1.0)

    cleared = alarms.observe("press-1", False, 0.1)

    assert cleared is not None and not cleared.raised and alarms.raised() == []


def test_an_alarm_standing_from_the_version_before_is_not_raised_again_and_clears_as_any_does() -> None:
    before = Alarms(k=2, n=3)
    for flag in (True, True):
        before.observe("press-1", flag, 1.0)
    after = Alarms(k=3, n=5)

    after.adopt(before.raised())
    during = [after.observe("press-1", True, 1.0) for _ in range(4)]
    normal = [after.observe("press-1", False, 0.1) for _ in range(5)]

    assert during == [None] * 4
    assert [c.raised for c in normal if c is not None] == [False] and normal[-1] is not None
    assert after.raised() == []


def test_machines_are_watched_apart() -> None:
    alarms = Alarms(k=2, n=2)
    alarms.observe("press-1", True, 1.0)

    assert alarms.observe("press-2", True, 1.0) is None


def test_an_edge_reporting_more_machines_than_it_may_is_refused() -> None:
    alarms = Alarms(k=1, n=1, max_machines=2)
    alarms.observe("press-1", False, 0.0)
    alarms.observe("press-2", False, 0.0)

    with pytest.raises(InvalidInput, match="more than 2 machines"):
        alarms.observe("press-3", False, 0.0)


def _running_normal(exported: ExportedSensorModel) -> tuple[np.ndarray, np.ndarray]:
    """Normal windows of the machine running (its pump pulsing), filled and raw, none flagged as they are."""
    scorer = WindowScorer(exported.folder)
    normal = exported.labels == 0
    x, raw = exported.x[normal], exported.raw[normal]
    keep = (np.nanmin(raw[:, :, 3], axis=1) > 4.0) & ~scorer.anomalous(x, raw)
    return x[keep][:200], raw[keep][:200]


def test_a_stuck_sensor_is_flagged_by_its_texture(exported: ExportedSensorModel) -> None:
    x, raw = _running_normal(exported)
    stuck_raw = raw.copy()
    stuck_raw[:, :, 3] = raw[:, :1, 3]  # the pressure sensor repeats its first reading
    stuck = x.copy()
    stuck[:, :, 3] = x[:, :1, 3]

    flagged = WindowScorer(exported.folder).anomalous(stuck, stuck_raw)

    assert flagged.mean() >= 0.9


def test_a_gap_in_the_readings_is_not_taken_for_a_stuck_sensor(exported: ExportedSensorModel) -> None:
    _, raw = _running_normal(exported)
    gappy = raw.copy()
    gappy[:, 5:25, 3] = np.nan  # the bus dropped the pressure sensor for 20 readings

    distances = WindowScorer(exported.folder).texture_distances(gappy)

    assert distances is not None and exported.spec.texture is not None
    assert (distances > exported.spec.texture.threshold).mean() <= 0.05


def test_texture_reads_a_still_sensor_as_no_step_and_too_few_readings_as_unknown() -> None:
    raw = np.ones((1, 30, 2), np.float32)
    raw[0, :, 1] = np.nan
    raw[0, :4, 1] = [1.0, 2.0, 3.0, 4.0]

    features = texture_features(raw)

    assert features[0, 0] == 1.0 and features[0, 2] == pytest.approx(np.log(1e-3))
    assert np.isnan(features[0, 1]) and np.isnan(features[0, 3])
