"""Sensor readings over MQTT to an alarm on Kafka: a store site's own Mosquitto and MinIO, the core's Kafka.

A device logs in to the store's broker with its own token and publishes readings of a
machine on ``edge/<edge>/sensors/<device>/<machine>``; the gateway's intake windows and
scores them with a real sensor model (trained here, exported to LiteRT) and, when K of
the machine's last N windows are anomalous, announces ``anomaly-detected`` and keeps the
window in the store's bucket.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from edgecore.stack import Stack
from edgecore.stack.mosquitto import MosquittoInstall
from edgecore.stack.settings import StackSettings
from foundation.events import AnomalyDetected
from foundation.layout import Layout, Location
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.conditions import wait_for
from testkit.sensors import (
    SensorFloor,
    anomaly_events,
    export_sensor_model_for,
    sensor_floor,
    telemetry_readings,
)

DEVICE, MACHINE = "plc-1", "press-1"
SEED = 5
TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def floor(
    stack: Stack, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SensorFloor]:
    if MosquittoInstall(StackSettings()).binary() is None:
        pytest.skip("no mosquitto on this machine (no system package and no apt-get to fetch one)")
    model = export_sensor_model_for(MACHINE, tmp_path_factory.mktemp("sensor-model") / "v000001", SEED)
    core = settings.updated(
        state_dir=tmp_path_factory.mktemp("core"),
        kafka={"topic_anomaly_detected": f"test-anomaly-{uuid.uuid4().hex[:10]}"},
    )
    with sensor_floor(core, model.folder, "sensor-shop", DEVICE) as floor:
        yield floor


def _answer(floor: SensorFloor, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first answer on the device's results topic that is ``wanted`` (earlier ones are passed over)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            answer = floor.replies.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if wanted(answer):
            return answer
    raise AssertionError(f"no such answer on the device's results topic within {TIMEOUT_S} s")


def readings(start: int, count: int, fault: str | None = None) -> list[dict[str, object]]:
    return telemetry_readings(MACHINE, SEED, start, count, fault)


def alarms(floor: SensorFloor, machine: str) -> list[AnomalyDetected]:
    return [a for a in anomaly_events(floor.settings, floor.site.edge) if a.machine == machine]


def test_normal_readings_raise_no_alarm(floor: SensorFloor) -> None:
    floor.publish("press-2", readings(0, 300))

    wait_for(
        lambda: floor.monitor.metrics.windows_scored("press-2") >= 27, TIMEOUT_S, what="the readings scored"
    )
    assert alarms(floor, "press-2") == []


def test_a_wearing_bearing_raises_one_alarm_with_its_window_kept_at_the_store(
    floor: SensorFloor,
) -> None:
    floor.publish(MACHINE, readings(0, 180))
    floor.publish(MACHINE, readings(180, 180, fault="degradation"))

    [alarm] = wait_for(lambda: alarms(floor, MACHINE), TIMEOUT_S, what="an alarm")

    answer = _answer(floor, lambda a: a["machine"] == MACHINE and a.get("alarms") == [MACHINE])
    assert answer["status"] == 202 and answer["readings"] == 180  # the device hears which message raised it
    assert (alarm.edge, alarm.anomalous, alarm.of) == (floor.site.edge, 3, 5)
    texture = (alarm.texture_distance or 0.0) > (alarm.texture_threshold or float("inf"))
    assert alarm.error > alarm.threshold or texture  # one of the two detectors raised it
    bucket = Layout(floor.settings.buckets).edge_bucket(floor.site.edge)
    kept = json.loads(ObjectStore(floor.settings.s3).get_bytes(Location(bucket, alarm.window_key)))
    assert kept["machine"] == MACHINE and len(kept["readings"]) == 30


def test_an_alarm_that_clears_keeps_when_its_last_anomalous_window_ended_for_staff_s_verdict(
    floor: SensorFloor,
) -> None:
    floor.publish("press-3", readings(0, 180))
    floor.publish("press-3", readings(180, 180, fault="degradation"))
    [alarm] = wait_for(lambda: alarms(floor, "press-3"), TIMEOUT_S, what="an alarm")

    floor.publish("press-3", readings(360, 180))  # the bearing replaced: normal again

    bucket = Layout(floor.settings.buckets).edge_bucket(floor.site.edge)
    window = Location(bucket, alarm.window_key)
    kept = wait_for(
        lambda: (k := json.loads(ObjectStore(floor.settings.s3).get_bytes(window))).get("cleared_at") and k,
        TIMEOUT_S,
        what="the clearing kept",
    )
    until = datetime.fromisoformat(kept["anomalous_until"])
    assert datetime.fromisoformat(kept["span_start"]) < alarm.window_end <= until
    assert until < datetime.fromisoformat(
        kept["cleared_at"]
    )  # the normal windows that cleared it are not its


def test_readings_of_an_unknown_sensor_are_refused_to_the_device_without_repeating_them(
    floor: SensorFloor,
) -> None:
    floor.publish(MACHINE, [{"t": 1.0, "values": {"secret_sensor_x": 1.0}}])

    reply = _answer(floor, lambda a: a["status"] != 202)

    assert reply["status"] == 400 and reply["machine"] == MACHINE
    assert "sensors this model does not read" in str(reply["reason"])
    assert "secret_sensor_x" not in str(reply["reason"])
