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
the gateway reconnects (``edge_sync.uplink.subscriber``).
Oversized packets never arrive: the local broker refuses them (``max_packet_size``).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_sync.uplink.gateway import Gateway
from edge_sync.uplink.subscriber import QueuedSubscriber, Received
from foundation.errors import EdgecoreError, PayloadTooLarge, http_status
from foundation.layout import SKU_RE

log = logging.getLogger(__name__)

_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))


def images_topic(edge: str) -> str:
    return f"edge/{edge}/images/+/+"


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


class MqttIntake(QueuedSubscriber):
    """Subscribes the gateway to its edge's image topic on an MQTT broker."""

    def __init__(self, gateway: Gateway, host: str, port: int, password: str, retry_s: float = 2.0) -> None:
        super().__init__(
            gateway.edge, host, port, gateway_user(gateway.edge), password, images_topic(gateway.edge)
        )
        self.gateway = gateway
        self.retry_s = retry_s
        self._topic = re.compile(rf"^edge/{re.escape(self.edge)}/images/([^/]+)/([^/]*)$")

    def handle(self, item: Received) -> bool:
        answer = self._answer_retrying(item)
        if answer is None:
            return False  # stopping while the store was unreachable: the broker delivers it again
        self._reply(item, answer)
        return True

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
