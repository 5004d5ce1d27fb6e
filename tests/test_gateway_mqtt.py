"""The gateway's MQTT intake, with real devices (paho) on the stack's real Mosquitto and MinIO."""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_sync.uplink.gateway import Gateway
from edge_sync.uplink.mqtt import MqttIntake, results_topic
from edge_sync.uplink.service import build_gateway
from edgecore.stack import Stack
from edgecore.stack.mosquitto import PACKET_HEADROOM
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.uplink import image_bytes

SKU = "COLA-330"
ANSWER_TIMEOUT_S = 20.0


class Device:
    """A kiosk speaking MQTT 5: publishes an image, waits for the gateway's answer."""

    def __init__(self, settings: Settings) -> None:
        self.replies: queue.Queue[dict[str, object]] = queue.Queue()
        self.reply_topic = f"devices/{uuid.uuid4().hex}/replies"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda _c, _u, m: self.replies.put(json.loads(m.payload))
        self._acked: set[int] = set()
        self._subscribed = threading.Condition()
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(settings.uplink.mqtt_host, settings.uplink.mqtt_port)
        self.client.loop_start()
        self.subscribe(self.reply_topic)

    def _on_subscribe(self, _c: object, _u: object, mid: int, _codes: object, _props: object) -> None:
        with self._subscribed:
            self._acked.add(mid)
            self._subscribed.notify_all()

    def subscribe(self, topic: str) -> None:
        """Subscribe and wait for the SUBACK, so no answer can come before it."""
        _, mid = self.client.subscribe(topic, qos=1)
        with self._subscribed:
            assert self._subscribed.wait_for(lambda: mid in self._acked, ANSWER_TIMEOUT_S), topic

    def publish(self, topic: str, payload: bytes, content_type: str | None = None) -> mqtt.MQTTMessageInfo:
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = self.reply_topic
        if content_type:
            properties.ContentType = content_type
        info = self.client.publish(topic, payload, qos=1, properties=properties)
        info.wait_for_publish(timeout=ANSWER_TIMEOUT_S)
        return info

    def answer(self) -> dict[str, object]:
        return self.replies.get(timeout=ANSWER_TIMEOUT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Store:
    edge: str
    settings: Settings
    gateway: Gateway
    store: ObjectStore
    layout: Layout

    def images(self) -> list[str]:
        return [o.location.key for o in self.store.list(self.layout.incoming_prefix(self.edge))]

    def topic(self, sku: str = SKU) -> str:
        return f"edge/{self.edge}/images/{sku}"


@pytest.fixture
def shop(
    stack: Stack, settings: Settings, store: ObjectStore, unique: str, tmp_path: Path
) -> Iterator[Store]:
    if stack.mosquitto.binary() is None:
        pytest.skip("no mosquitto on this machine (no system package and no apt-get to fetch one)")
    cfg = settings.updated(
        state_dir=tmp_path, buckets={"edge_prefix": f"t{unique}-"}, uplink={"max_image_bytes": 60_000}
    )
    edge = f"store-{unique}"
    gateway = build_gateway(cfg, edge)
    yield Store(edge, cfg, gateway, store, Layout(cfg.buckets))
    gateway.outbox.close()


@pytest.fixture
def intake(shop: Store) -> Iterator[MqttIntake]:
    running = MqttIntake(shop.gateway, shop.settings.uplink.mqtt_host, shop.settings.uplink.mqtt_port)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def device(shop: Store) -> Iterator[Device]:
    kiosk = Device(shop.settings)
    yield kiosk
    kiosk.close()


def test_a_published_image_is_stored_in_the_edge_bucket_and_answered(
    shop: Store, intake: MqttIntake, device: Device
) -> None:
    data = image_bytes(1)

    device.publish(shop.topic(), data)
    answer = device.answer()

    assert answer["status"] == 201 and answer["created"] is True, answer
    assert answer["image_id"] == hashlib.sha256(data).hexdigest()
    assert shop.images() == [answer["key"]]
    assert (
        shop.store.get_bytes(shop.layout.incoming_image(shop.edge, SKU, str(answer["image_id"]), "jpg"))
        == data
    )


def test_the_same_image_published_twice_is_stored_once(
    shop: Store, intake: MqttIntake, device: Device
) -> None:
    device.publish(shop.topic(), image_bytes(2))
    device.publish(shop.topic(), image_bytes(2))

    assert [device.answer()["created"], device.answer()["created"]] == [True, False]
    assert len(shop.images()) == 1


def test_a_device_without_a_response_topic_reads_its_answer_on_the_sku_s_results_topic(
    shop: Store, intake: MqttIntake, device: Device
) -> None:
    device.subscribe(results_topic(shop.edge, SKU))
    plain = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    plain.connect(shop.settings.uplink.mqtt_host, shop.settings.uplink.mqtt_port)
    plain.loop_start()
    try:
        plain.publish(shop.topic(), image_bytes(3), qos=1).wait_for_publish(timeout=ANSWER_TIMEOUT_S)
        answer = device.answer()
    finally:
        plain.disconnect()
        plain.loop_stop()

    assert answer["status"] == 201 and answer["sku"] == SKU


BAD_PAYLOADS: dict[str, tuple[int, str, bytes, str | None]] = {
    "not an image": (415, SKU, b"GIF89a" + b"\0" * 200, None),
    "declared as text": (415, SKU, image_bytes(3), "text/plain"),
    "png declared as jpeg": (415, SKU, image_bytes(4, "PNG"), "image/jpeg"),
    "truncated jpeg": (400, SKU, image_bytes(5, side=200)[:900], None),
    "empty payload": (415, SKU, b"", None),
    "lowercase sku": (400, "cola-330", image_bytes(6), None),
    "over the size limit": (413, SKU, image_bytes(7, "PNG", side=160), None),
}


@pytest.mark.parametrize("case", list(BAD_PAYLOADS), ids=list(BAD_PAYLOADS))
def test_a_bad_image_gets_its_status_and_reason_and_nothing_is_stored(
    shop: Store, intake: MqttIntake, device: Device, case: str
) -> None:
    status, sku, payload, content_type = BAD_PAYLOADS[case]

    device.publish(shop.topic(sku), payload, content_type)
    answer = device.answer()

    assert answer["status"] == status and answer["reason"], answer
    assert shop.images() == []


def test_a_bad_image_does_not_disturb_the_next_one(shop: Store, intake: MqttIntake, device: Device) -> None:
    device.publish(shop.topic(), b"not an image")
    device.publish(shop.topic(), image_bytes(8))

    assert [device.answer()["status"], device.answer()["status"]] == [415, 201]
    assert len(shop.images()) == 1


def test_images_published_while_the_gateway_is_down_are_stored_when_it_is_back(
    shop: Store, device: Device
) -> None:
    first = MqttIntake(shop.gateway, shop.settings.uplink.mqtt_host, shop.settings.uplink.mqtt_port)
    first.start()  # the broker now keeps a session for this gateway
    first.stop()

    for seed in (10, 11, 12):
        device.publish(shop.topic(), image_bytes(seed))
    assert shop.images() == []

    again = MqttIntake(shop.gateway, shop.settings.uplink.mqtt_host, shop.settings.uplink.mqtt_port)
    again.start()
    try:
        answers = [device.answer() for _ in range(3)]
    finally:
        again.stop()
    assert [a["status"] for a in answers] == [201, 201, 201]
    assert len(shop.images()) == 3


def test_a_packet_over_the_broker_s_limit_never_reaches_the_intake(
    shop: Store, settings: Settings, intake: MqttIntake, device: Device
) -> None:
    big = Device(shop.settings)
    try:
        oversized = b"\xff\xd8\xff" + b"\0" * (settings.uplink.max_image_bytes + PACKET_HEADROOM)
        big.client.publish(shop.topic(), oversized, qos=1)
        device.publish(shop.topic(), image_bytes(13))

        assert device.answer()["status"] == 201
        with pytest.raises(queue.Empty):
            big.replies.get(timeout=2)  # the broker dropped the packet: no answer, nothing stored
    finally:
        big.close()
    assert len(shop.images()) == 1
