"""The gateway's sensor intake: devices' readings in, handed in order to the edge's sensor monitor.

Devices publish readings on ``edge/<edge-id>/sensors/<device-id>/<machine>`` with their
own login (the broker's ACL: under their own name only).  The intake logs in as
``gateway-<edge-id>-sensors``, a session of its own beside the image intake's
(``edge_sync.uplink.subscriber``), and hands each message to what takes readings
(:class:`SensorReadings`, composed in at the entry point: ``serving.sensor_monitor``).
Every message is answered on ``edge/<edge-id>/results/<device-id>/sensors``: taken (202,
with how many readings and the machines whose alarm it raised, at QoS 0: news, since the
alarm itself goes to Kafka), or refused with a reason that never repeats it (QoS 1), and
acknowledged either way (it would be refused again).  QoS 1 tells a device that its broker
has a message; the answer, that the gateway took it.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Protocol

from edge_sync.uplink.mqtt import gateway_user, results_topic
from edge_sync.uplink.subscriber import QueuedSubscriber, Received

log = logging.getLogger(__name__)


class SensorReadings(Protocol):
    """What takes a device's sensor readings at the gateway (``serving.sensor_monitor``)."""

    def take(self, device: str, machine: str, payload: bytes) -> dict[str, Any]:
        """What HTTP would answer for one message, as a dict with its ``status``."""
        ...


def sensors_topic(edge: str) -> str:
    return f"edge/{edge}/sensors/+/+"


def sensors_user(edge: str) -> str:
    """The sensor intake's login at its store's broker (also its client id)."""
    return f"{gateway_user(edge)}-sensors"


class SensorIntake(QueuedSubscriber):
    def __init__(self, edge: str, host: str, port: int, password: str, readings: SensorReadings) -> None:
        super().__init__(edge, host, port, sensors_user(edge), password, sensors_topic(edge))
        self.readings = readings
        self._sensor = re.compile(rf"^edge/{re.escape(edge)}/sensors/([^/]+)/([^/]*)$")

    def handle(self, item: Received) -> bool:
        match = self._sensor.match(item.topic)  # the subscription guarantees the shape
        device, machine = match.groups() if match else ("", "")
        try:
            answer = self.readings.take(device, machine, item.payload)
        except Exception:  # a bug must not stop the intake: logged, answered, acknowledged
            log.exception("edge %s: sensor readings on %s failed", self.edge, item.topic)
            answer = {"status": 500, "reason": "internal error"}
        refused = answer["status"] >= 400
        if refused:
            log.info("edge %s: readings of %s refused (%d)", self.edge, device, answer["status"])
        body = json.dumps({**answer, "device": device, "machine": machine}).encode()
        # a refusal must reach the device; a taken message's answer is news, its alarm is on Kafka
        self.client.publish(results_topic(self.edge, device, "sensors"), body, qos=1 if refused else 0)
        return True
