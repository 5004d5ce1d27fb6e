"""The edge's sensor monitor on its own: what it refuses, and what a refusal leaves behind (nothing).

A real sensor model (trained here, exported to LiteRT) and a sink that keeps the alarms
it is handed, in place of the Kafka event and the store's bucket (``test_sensor_alarms``
covers those).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from edge_sync.uplink.telemetry_batches import TelemetryBatches
from foundation.errors import InvalidInput
from foundation.sensor_model import SensorModel
from foundation.telemetry import read_csv
from serving.alarms import Alarms
from serving.anomaly import WindowScorer
from serving.metrics import SensorMetrics
from serving.sensor_monitor import MACHINES_PER_DEVICE, Alarm, Message, Reading, SensorMonitor
from testkit.sensors import ExportedSensorModel, export_sensor_model_for, telemetry_readings

MACHINE, SEED = "press-1", 5
EDGE = "sensor-shop"


class Kept:
    """The alarm sink of these tests: every alarm it is handed."""

    def __init__(self) -> None:
        self.alarms: list[Alarm] = []

    def raised(self, alarm: Alarm) -> None:
        self.alarms.append(alarm)

    def cleared(self, machine: str, at: datetime, flagged_until: datetime | None) -> None:
        pass


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ExportedSensorModel:
    return export_sensor_model_for(MACHINE, tmp_path_factory.mktemp("sensor-model") / "v000001", SEED)


@pytest.fixture
def monitor(model: ExportedSensorModel) -> SensorMonitor:
    scorer = WindowScorer(model.folder)
    return SensorMonitor(
        scorer, Alarms(scorer.spec.alert_k, scorer.spec.alert_n), Kept(), SensorMetrics(EDGE)
    )


def _message(readings: list[dict[str, object]]) -> bytes:
    return json.dumps({"readings": readings}).encode()


def test_a_message_with_a_field_of_its_own_is_refused_without_its_name(monitor: SensorMonitor) -> None:
    body = b'{"readings": [{"t": 1, "values": {}}], "X\\nFAKE LOG LINE": 1}'

    answer = monitor.take("plc-1", MACHINE, body)

    assert answer["status"] == 400 and "FAKE" not in answer["reason"] and "<key>" in answer["reason"]


def test_a_reading_too_large_to_hold_is_refused_and_leaves_the_machine_as_it_was(
    monitor: SensorMonitor,
) -> None:
    readings = telemetry_readings(MACHINE, SEED, 0, 60)
    huge = [{"t": readings[0]["t"], "values": {"temperature_c": 1e300}}]

    refused = monitor.take("plc-1", "press-9", _message(huge))
    taken = monitor.take("plc-1", "press-9", _message(readings))

    assert refused["status"] == 400 and taken["status"] == 202
    assert (
        monitor.metrics.windows_scored("press-9") == 4
    )  # windows end at readings 30, 40, 50 and 60, none holding the refused one


def test_a_machine_reported_by_one_device_is_refused_from_another(monitor: SensorMonitor) -> None:
    readings = telemetry_readings(MACHINE, SEED, 0, 5)
    monitor.take("plc-1", "press-7", _message(readings))

    answer = monitor.take("plc-2", "press-7", _message(telemetry_readings(MACHINE, SEED, 5, 5)))

    assert answer["status"] == 403


def test_a_message_delivered_again_is_not_taken_twice(monitor: SensorMonitor) -> None:
    message = _message(telemetry_readings(MACHINE, SEED, 0, 40))

    monitor.take("plc-1", "press-8", message)
    monitor.take("plc-1", "press-8", message)

    assert monitor.metrics.windows_scored("press-8") == 2  # readings 30 and 40, once each


def test_the_machines_watched_are_bounded(model: ExportedSensorModel) -> None:
    scorer = WindowScorer(model.folder)
    monitor = SensorMonitor(scorer, Alarms(3, 5, max_machines=2), Kept(), SensorMetrics(EDGE))
    reading = telemetry_readings(MACHINE, SEED, 0, 1)
    monitor.readings("m-1", _parse(reading), "plc-1")
    monitor.readings("m-2", _parse(reading), "plc-1")

    with pytest.raises(InvalidInput, match="more than 2 machines"):
        monitor.readings("m-3", _parse(reading), "plc-1")


def _parse(readings: list[dict[str, object]]) -> list[Reading]:
    return list(Message.model_validate({"readings": readings}).readings)


def test_a_reading_past_what_a_sensor_reads_is_refused_rather_than_scored_as_no_number(
    monitor: SensorMonitor,
) -> None:
    readings = telemetry_readings(MACHINE, SEED, 0, 60)
    readings[35] = {"t": readings[35]["t"], "values": {"vibration_mm_s": 3e20}}

    answer = monitor.take("plc-1", "press-5", _message(readings))

    assert answer["status"] == 400 and "out of range" in answer["reason"]
    assert monitor.metrics.windows_scored("press-5") == 0


def test_a_reading_timed_ahead_of_the_gateway_is_refused_and_the_machine_stays_watched(
    monitor: SensorMonitor,
) -> None:
    readings = telemetry_readings(MACHINE, SEED, 0, 40)
    ahead = [{"t": monitor.clock() + 10 * 365 * 86400, "values": {"temperature_c": 20.0}}]

    refused = monitor.take("plc-1", "press-4", _message(ahead))
    taken = monitor.take("plc-1", "press-4", _message(readings))

    assert refused["status"] == 400 and "future" in refused["reason"]
    assert taken["status"] == 202 and monitor.metrics.windows_scored("press-4") == 2


def test_a_batch_sent_out_of_order_is_taken_whole(monitor: SensorMonitor) -> None:
    readings = telemetry_readings(MACHINE, SEED, 0, 40)

    monitor.take("plc-1", "press-3", _message(list(reversed(readings))))

    assert monitor.metrics.windows_scored("press-3") == 2  # readings 30 and 40, as in time order


def test_a_score_that_is_no_number_flags_its_window(model: ExportedSensorModel) -> None:
    described = SensorModel.load(model.folder)
    errors = np.array([0.0, np.inf, np.nan])

    assert described.flags(errors, None).tolist() == [False, True, True]


def test_a_window_never_spans_an_outage_of_the_device(monitor: SensorMonitor) -> None:
    before = telemetry_readings(MACHINE, SEED, 0, 40)
    after = [{**r, "t": float(r["t"]) + 4 * 3600} for r in telemetry_readings(MACHINE, SEED, 40, 40)]  # type: ignore[arg-type]

    monitor.take("plc-1", "press-2", _message(before))
    monitor.take("plc-1", "press-2", _message(after))

    assert monitor.metrics.windows_scored("press-2") == 4  # readings 30 and 40 on each side of the outage


def test_a_device_naming_ever_new_machines_is_stopped_at_its_own_share(model: ExportedSensorModel) -> None:
    scorer = WindowScorer(model.folder)
    monitor = SensorMonitor(scorer, Alarms(3, 5), Kept(), SensorMetrics(EDGE))
    one = _message(telemetry_readings(MACHINE, SEED, 0, 1))
    answers = [monitor.take("plc-9", f"m-{i}", one)["status"] for i in range(MACHINES_PER_DEVICE + 1)]

    assert answers == [202] * MACHINES_PER_DEVICE + [400]
    assert monitor.take("plc-1", "press-1", one)["status"] == 202  # another device still has room


def test_every_reading_taken_is_kept_once_for_the_core_and_a_refused_message_not_at_all(
    model: ExportedSensorModel, tmp_path: Path
) -> None:
    scorer = WindowScorer(model.folder)
    batches = TelemetryBatches(tmp_path)
    monitor = SensorMonitor(
        scorer,
        Alarms(scorer.spec.alert_k, scorer.spec.alert_n),
        Kept(),
        SensorMetrics(EDGE),
        recorder=batches,
    )
    readings = telemetry_readings(MACHINE, SEED, 0, 40)
    future = [{"t": 4e9, "values": {"temperature_c": 40.0}}]

    monitor.take("plc-1", MACHINE, _message(readings[:30]))
    monitor.take("plc-1", MACHINE, _message(readings[20:]))  # ten delivered again
    monitor.take("plc-1", MACHINE, _message(future))

    closed = batches.close_batch()
    assert closed is not None
    [series] = read_csv(closed, scorer.spec.sensors)
    assert series.times.tolist() == [r["t"] for r in readings]


def test_an_alarm_names_the_span_of_readings_behind_it_from_its_earliest_window(
    monitor: SensorMonitor, model: ExportedSensorModel
) -> None:
    readings = telemetry_readings(MACHINE, SEED, 0, 180) + telemetry_readings(
        MACHINE, SEED, 180, 180, "degradation"
    )

    monitor.take("plc-1", MACHINE, _message(readings))

    [alarm] = cast(Kept, monitor.sink).alarms
    assert alarm.span_start is not None
    spec = model.spec
    behind = spec.window - 1 + (spec.alert_n - 1) * spec.stride  # readings before the raising window's last
    assert (alarm.window_end - alarm.span_start).total_seconds() == pytest.approx(behind * 10.0)
