"""The gateway's MQTT intake: devices that speak MQTT publish images instead of POSTing them.

A device logs in to the store's broker with its own name and password (no anonymous
access) and publishes one JPEG or PNG per message, QoS 1, on
``edge/<edge-id>/images/<device-id>/<sku>``; the broker's ACLs let a device publish
under its own name only and read only its own results, and the broker takes the login
name as the client id, so nobody can take over the gateway's session
(``edgecore.stack.mosquitto``).  MQTT 5's ``Content-Type`` property is honoured; without
it the image's magic bytes decide.  Each image goes through :meth:`Gateway.accept_image`,
the very checks and storage of ``POST /v1/images/<sku>``, and the answer HTTP would give
comes back as JSON on ``edge/<edge-id>/results/<device-id>/<sku>`` (and on the
message's MQTT 5 response topic, with its correlation data, when that topic is under
the device's own results)::

    {"status": 201, "sku": "COLA-330", "image_id": "<sha256>", "key": "...", "created": true}
    {"status": 415, "sku": "COLA-330", "reason": "payload is neither a JPEG nor a PNG"}

Nothing accepted is lost: a message is acknowledged (manual PUBACK) only once its image
is stored or refused for good, and the session is persistent, so what the broker holds
unacknowledged (the gateway stopped, or MinIO was unreachable) is delivered again when
the gateway reconnects.  One worker thread stores images in arrival order, which keeps
their PUBACKs in the order MQTT requires; the network thread only queues (bounded) work.
Oversized packets never arrive: the local broker refuses them (``max_packet_size``).

Sensor readings (the second use case) arrive on ``edge/<edge-id>/sensors/<device-id>/<machine>``
when the gateway runs with a sensor monitor (:class:`SensorReadings`, composed in by the
entry point): a queue and worker of their own, so a slow image store never delays an
alarm; a refused message is answered on ``edge/<edge-id>/results/<device-id>/sensors``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_sync.uplink.gateway import Gateway
from foundation.errors import EdgecoreError, PayloadTooLarge, ServiceUnavailable, http_status
from foundation.layout import SKU_RE

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600
"""How long the broker keeps undelivered images for a gateway that is down: a week, like Kafka's retention."""

QUEUE_LIMIT = 64
"""Images received but not yet stored; when full, the network thread waits (back-pressure)."""

_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))


class SensorReadings(Protocol):
    """What takes a device's sensor readings at the gateway (``serving.sensor_monitor``)."""

    def take(self, device: str, machine: str, payload: bytes) -> dict[str, Any]:
        """What HTTP would answer for one message, as a dict with its ``status``."""
        ...


def images_topic(edge: str) -> str:
    return f"edge/{edge}/images/+/+"


def sensors_topic(edge: str) -> str:
    return f"edge/{edge}/sensors/+/+"


def results_topic(edge: str, device: str, sku: str) -> str:
    return f"edge/{edge}/results/{device}/{sku}"


def gateway_user(edge: str) -> str:
    """The gateway's login at its store's broker (also its client id: the broker enforces it)."""
    return f"gateway-{edge}"


def content_type_of(payload: bytes, declared: str | None) -> str:
    """The declared type when the device said one, else what the magic bytes say."""
    if declared:
        return declared.split(";", 1)[0].strip().lower()
    for magic, media in _MAGIC:
        if payload.startswith(magic):
            return media
    return ""


@dataclass(frozen=True)
class Received:
    mid: int
    qos: int
    topic: str
    payload: bytes
    content_type: str | None
    response_topic: str | None
    correlation: bytes | None


class MqttIntake:
    """Subscribes the gateway to its edge's image topic on an MQTT broker."""

    def __init__(
        self,
        gateway: Gateway,
        host: str,
        port: int,
        password: str,
        retry_s: float = 2.0,
        readings: SensorReadings | None = None,
    ) -> None:
        self.gateway = gateway
        self.readings = readings
        self.edge = gateway.edge
        self.host, self.port = host, port
        self.retry_s = retry_s
        self._topic = re.compile(rf"^edge/{re.escape(self.edge)}/images/([^/]+)/([^/]*)$")
        self._sensor = re.compile(rf"^edge/{re.escape(self.edge)}/sensors/([^/]+)/([^/]*)$")
        self._work: queue.Queue[Received | None] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._readings: queue.Queue[Received | None] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._scorer = threading.Thread(target=self._score_in_order, name="mqtt-sensors", daemon=True)
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._worker = threading.Thread(target=self._store_in_order, name="mqtt-intake", daemon=True)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=gateway_user(self.edge),
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        self.client.username_pw_set(gateway_user(self.edge), password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    # -- life cycle ---------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> None:
        """Connect (resuming the gateway's session) and wait until subscribed."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        self._worker.start()
        if self.readings is not None:
            self._scorer.start()
        try:
            self.client.connect(self.host, self.port, keepalive=30, clean_start=False, properties=properties)
        except OSError as exc:
            raise ServiceUnavailable(
                f"edge {self.edge}: MQTT broker {self.host}:{self.port} unreachable ({exc})"
            ) from exc
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise ServiceUnavailable(
                f"edge {self.edge}: not subscribed on {self.host}:{self.port} in {timeout_s:.0f}s"
            )
        log.info(
            "MQTT intake of edge %s on %s:%d, topic %s",
            self.edge,
            self.host,
            self.port,
            images_topic(self.edge),
        )

    def stop(self) -> None:
        """Finish the image being stored; the rest stays unacknowledged at the broker for next time."""
        self._stop.set()
        self.client.disconnect()  # first: nothing new arrives, the broker keeps what is unacknowledged
        self.client.loop_stop()
        for work, worker in ((self._work, self._worker), (self._readings, self._scorer)):
            with contextlib.suppress(queue.Full):  # a full queue: the worker sees the stop flag instead
                work.put_nowait(None)
            if worker.is_alive():
                worker.join(timeout=30)

    # -- paho callbacks (network thread) -------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.warning("MQTT connect of edge %s refused: %s", self.edge, reason)
            return
        client.subscribe(images_topic(self.edge), qos=1)
        if self.readings is not None:
            client.subscribe(sensors_topic(self.edge), qos=1)
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        props = message.properties
        received = Received(
            mid=message.mid,
            qos=message.qos,
            topic=message.topic,
            payload=bytes(message.payload),
            content_type=getattr(props, "ContentType", None),
            response_topic=getattr(props, "ResponseTopic", None),
            correlation=getattr(props, "CorrelationData", None),
        )
        work = self._readings if self._sensor.match(received.topic) else self._work
        while not self._stop.is_set():
            try:
                work.put(received, timeout=0.5)
                return
            except queue.Full:
                continue

    # -- the worker --------------------------------------------------------------------
    def _store_in_order(self) -> None:
        while True:
            item = self._work.get()
            if item is None or self._stop.is_set():
                return
            answer = self._answer_retrying(item)
            if answer is None:
                return  # stopping while the store was unreachable: the broker delivers it again
            self._reply(item, answer)
            if item.qos > 0:
                self.client.ack(item.mid, item.qos)

    def _score_in_order(self) -> None:
        """Readings, scored in arrival order (a machine's windows must be); each acknowledged once taken."""
        assert self.readings is not None
        while True:
            item = self._readings.get()
            if item is None or self._stop.is_set():
                return
            device, machine = self._sensor.match(item.topic).groups()  # type: ignore[union-attr]
            try:
                answer = self.readings.take(device, machine, item.payload)
            except Exception:  # a bug must not stop the intake: logged, acknowledged
                log.exception("edge %s: sensor readings on %s failed", self.edge, item.topic)
                answer = {"status": 500, "reason": "internal error"}
            if answer["status"] >= 400:
                log.info("edge %s: readings on %s refused: %s", self.edge, item.topic, answer["reason"])
                body = json.dumps({**answer, "device": device, "machine": machine}).encode()
                self.client.publish(results_topic(self.edge, device, "sensors"), body, qos=1)
            if item.qos > 0:
                self.client.ack(item.mid, item.qos)

    def _answer_retrying(self, item: Received) -> dict[str, Any] | None:
        """The answer for one image; a store that is down is retried, never answered as a failure."""
        while True:
            answer = self.answer(item.topic, item.payload, item.content_type)
            if answer["status"] != 503:
                return answer
            log.warning("edge %s: keeping MQTT image for later, %s", self.edge, answer["reason"])
            if self._stop.wait(self.retry_s):
                return None

    def answer(self, topic: str, payload: bytes, declared_type: str | None) -> dict[str, Any]:
        """What HTTP would answer for this image, as a JSON-ready dict with its status."""
        match = self._topic.match(topic)  # the subscription guarantees the shape
        device, sku = (match.group(1), match.group(2)) if match else ("", "")
        try:
            limit = self.gateway.uplink.max_image_bytes
            if len(payload) > limit:
                raise PayloadTooLarge(f"image of {len(payload)} bytes exceeds the {limit}-byte limit")
            content_type = content_type_of(payload, declared_type) or "application/octet-stream"
            loc, created = self.gateway.accept_image(sku, content_type, payload)
        except EdgecoreError as exc:
            return {"status": http_status(exc), "device": device, "sku": sku, "reason": str(exc)}
        except Exception as exc:  # a bug must not stop the intake: answered, logged, acknowledged
            log.exception("edge %s: MQTT image on %s failed", self.edge, topic)
            return {"status": 500, "device": device, "sku": sku, "reason": f"{type(exc).__name__}"}
        image_id = loc.key.rsplit("/", 1)[1].rsplit(".", 1)[0]
        return {
            "status": 201 if created else 200,
            "device": device,
            "sku": sku,
            "image_id": image_id,
            "key": loc.key,
            "created": created,
        }

    def _reply(self, item: Received, answer: dict[str, Any]) -> None:
        if answer["status"] >= 400:
            log.info(
                "edge %s: MQTT image on %s refused (%d): %s",
                self.edge,
                item.topic,
                answer["status"],
                answer["reason"],
            )
        body = json.dumps(answer).encode()
        sku = answer["sku"] if SKU_RE.match(answer["sku"]) else "_invalid"  # never a wildcard in a topic
        own = results_topic(self.edge, answer["device"], sku)
        self.client.publish(own, body, qos=1)
        if item.response_topic and item.response_topic.startswith(own.rsplit("/", 1)[0] + "/"):
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if item.correlation is not None:
                properties.CorrelationData = item.correlation
            self.client.publish(item.response_topic, body, qos=1, properties=properties)
