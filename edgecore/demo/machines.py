"""A store's machines in the sensor story: their telemetry, and the device that publishes it over MQTT.

Each store has two refrigeration compressors.  Their history (two days, faults injected and
labelled) is the export an operator uploads for a first model; their live readings come
from the same generator, later in time, published by one device with its own token to the
store's broker, as a PLC would.  The gateway answers every message on the device's results
topic, saying which alarms it raised: the story reads those answers, and the alarms'
events on Kafka, never the gateway's insides.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_sync.uplink.mqtt import results_topic
from edgecore.demo.supervisor import DemoFailed
from edgecore.synthetic.telemetry import generate
from foundation.telemetry import SENSORS, Telemetry

MACHINES = ("compressor-1", "compressor-2")
HISTORY_H = 48.0
LIVE_H = 3.0
PERIOD_S = 10.0
READINGS_PER_MESSAGE = 360
"""An hour of one machine's readings per message (a device catching up after an outage sends so)."""


@dataclass(frozen=True)
class Plan:
    """When, in the live hours, each machine does something worth a look."""

    incident_h: float = 1.0
    """compressor-1's bearing starts wearing (degradation, for half an hour), and compressor-2 runs
    a clean-in-place cycle, whose alarm staff will dismiss."""
    second_wash_h: float = 2.0
    """compressor-2 washes again: by then the next round's model scores it."""


def history(edge_seed: int, live_from: float) -> list[Telemetry]:
    """Two days of each machine before ``live_from``, six labelled faults each."""
    start = live_from - HISTORY_H * 3600
    return [generate(m, HISTORY_H, seed=edge_seed + i, faults=6, start=start) for i, m in enumerate(MACHINES)]


def live(edge_seed: int, live_from: float, plan: Plan) -> dict[str, Telemetry]:
    """The live hours of each machine: compressor-1 with its fault, compressor-2 with its washes."""
    first, second = MACHINES
    return {
        first: generate(
            first,
            LIVE_H,
            seed=edge_seed + 100,
            start=live_from,
            faults=[("degradation", plan.incident_h, 0.5)],
        ),
        second: generate(
            second,
            LIVE_H,
            seed=edge_seed + 101,
            start=live_from,
            washes=(plan.incident_h, plan.second_wash_h),
        ),
    }


def readings(series: Telemetry, from_h: float, to_h: float) -> list[dict[str, Any]]:
    """The series' readings in ``[from_h, to_h)`` hours, as a device sends them."""
    per_hour = int(3600 / series.period_s)
    rows = range(int(from_h * per_hour), min(len(series.values), int(to_h * per_hour)))
    return [
        {
            "t": float(series.start + i * series.period_s),
            "values": {
                s: None if np.isnan(v) else float(v) for s, v in zip(SENSORS, series.values[i], strict=True)
            },
        }
        for i in rows
    ]


class Device:
    """A PLC at a store publishing its machines' readings to the store's broker, reading the answers."""

    def __init__(self, edge: str, name: str, token: str, host: str, port: int) -> None:
        self.edge, self.name = edge, name
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self._connected = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        self._client.username_pw_set(name, token)
        self._client.on_message = lambda _c, _u, m: self._answers.put(json.loads(m.payload))
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda _c, _u, _mid, _codes, _p: self._connected.set()
        self._client.connect(host, port)
        self._client.loop_start()

    def _on_connect(
        self, client: mqtt.Client, _userdata: object, _flags: object, code: Any, _props: object
    ) -> None:
        if code == 0:  # the answers' topic again after every reconnect; publishing waits for it
            client.subscribe(results_topic(self.edge, self.name, "sensors"), qos=1)

    def publish(self, machine: str, readings: list[dict[str, Any]], timeout_s: float = 60.0) -> list[str]:
        """Send the readings (a message per hour of them); the machines whose alarm they raised."""
        if not self._connected.wait(timeout_s):
            raise DemoFailed(f"{self.edge}: device {self.name} could not log in to the store's broker")
        # (set once the broker acknowledged the answers' subscription: no answer is published unheard)
        raised: list[str] = []
        for start in range(0, len(readings), READINGS_PER_MESSAGE):
            body = json.dumps({"readings": readings[start : start + READINGS_PER_MESSAGE]}).encode()
            info = self._client.publish(f"edge/{self.edge}/sensors/{self.name}/{machine}", body, qos=1)
            info.wait_for_publish(timeout=timeout_s)
            raised += self._answer(machine, timeout_s)
        return raised

    def _answer(self, machine: str, timeout_s: float) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                answer = self._answers.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise DemoFailed(f"{self.edge}: the gateway did not answer {machine}'s readings") from None
            if answer.get("machine") != machine:
                continue
            if answer.get("status") != 202:
                raise DemoFailed(
                    f"{self.edge}: the gateway refused {machine}'s readings: {answer.get('reason')}"
                )
            return [str(m) for m in answer.get("alarms", [])]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
