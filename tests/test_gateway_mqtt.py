"""The gateway's MQTT intake, with real devices (paho) on a store site's own Mosquitto and MinIO.

Nobody is anonymous at a store's broker: devices log in with their own name and token,
publish under their own name only, and cannot take over the gateway's session.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_sync.uplink.gateway import Gateway
from edge_sync.uplink.mqtt import MqttIntake, gateway_user, results_topic
from edge_sync.uplink.service import build_gateway
from edgecore.stack import Stack
from edgecore.stack.mosquitto import PACKET_HEADROOM, MosquittoInstall
from edgecore.stack.settings import StackSettings
from edgecore.stack.site import EdgeSite
from foundation.layout import Layout
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.conditions import wait_for
from testkit.uplink import image_bytes

SKU = "COLA-330"
DEVICE, OTHER_DEVICE = "kiosk-1", "kiosk-2"
ANSWER_TIMEOUT_S = 20.0


class Device:
    """A kiosk speaking MQTT 5 with its own login: publishes an image, waits for the gateway's answer."""

    def __init__(self, site: EdgeSite, name: str, token: str) -> None:
        self.edge, self.name = site.edge, name
        self.replies: queue.Queue[dict[str, object]] = queue.Queue()
        self.reply_topic = f"{results_topic(site.edge, name, SKU).rsplit('/', 1)[0]}/replies"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(name, token)
        self.client.on_message = lambda _c, _u, m: self.replies.put(json.loads(m.payload))
        self._acked: set[int] = set()
        self._subscribed = threading.Condition()
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(site.settings.uplink.mqtt_host, site.settings.uplink.mqtt_port)
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

    def topic(self, sku: str = SKU) -> str:
        return f"edge/{self.edge}/images/{self.name}/{sku}"

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
    site: EdgeSite
    gateway: Gateway
    store: ObjectStore
    layout: Layout

    @property
    def edge(self) -> str:
        return self.site.edge

    @property
    def settings(self) -> Settings:
        return self.site.settings

    def images(self) -> list[str]:
        return [o.location.key for o in self.store.list(self.layout.incoming_prefix(self.edge))]

    def topic(self, sku: str = SKU) -> str:
        return f"edge/{self.edge}/images/{DEVICE}/{sku}"

    def intake(self) -> MqttIntake:
        return MqttIntake(
            self.gateway,
            self.settings.uplink.mqtt_host,
            self.settings.uplink.mqtt_port,
            self.site.plan.mqtt_password,
        )


@dataclass(frozen=True)
class Site:
    site: EdgeSite
    device_token: str
    other_token: str


@pytest.fixture(scope="module")
def running_site(
    stack: Stack, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    if MosquittoInstall(StackSettings()).binary() is None:
        pytest.skip("no mosquitto on this machine (no system package and no apt-get to fetch one)")
    core = settings.updated(state_dir=tmp_path_factory.mktemp("core"), uplink={"max_image_bytes": 60_000})
    shop = EdgeSite(core, "mqtt-shop")
    # before the broker starts: in its first password file
    token, other = (
        shop.issue_gateway_token("device", DEVICE),
        shop.issue_gateway_token("device", OTHER_DEVICE),
    )
    shop.up()
    yield Site(shop, token, other)
    shop.down()


@pytest.fixture
def site(running_site: Site) -> EdgeSite:
    return running_site.site


@pytest.fixture
def shop(site: EdgeSite) -> Iterator[Store]:
    gateway = build_gateway(site.settings, site.edge)
    store = ObjectStore(site.settings.s3)
    for obj in store.list(Layout(site.settings.buckets).incoming_prefix(site.edge)):
        store.delete(obj.location)
    yield Store(site, gateway, store, Layout(site.settings.buckets))
    gateway.outbox.close()


def end_gateway_session(shop: Store) -> None:
    """Drop what an earlier test left unacknowledged in the gateway's persistent session (the
    intake resumes it on purpose), so each test's intake starts with nothing queued."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=gateway_user(shop.edge), protocol=mqtt.MQTTv5)
    client.username_pw_set(gateway_user(shop.edge), shop.site.plan.mqtt_password)
    client.connect(shop.settings.uplink.mqtt_host, shop.settings.uplink.mqtt_port, clean_start=True)
    client.loop_start()
    try:
        wait_for(client.is_connected, timeout_s=10, what="a clean session of the gateway's client id")
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def intake(shop: Store) -> Iterator[MqttIntake]:
    end_gateway_session(shop)
    running = shop.intake()
    running.start()
    yield running
    running.stop()


@pytest.fixture
def device(shop: Store, running_site: Site) -> Iterator[Device]:
    kiosk = Device(shop.site, DEVICE, running_site.device_token)
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


def test_a_device_without_a_response_topic_reads_its_answer_on_its_results_topic(
    shop: Store, intake: MqttIntake, device: Device
) -> None:
    device.subscribe(results_topic(shop.edge, DEVICE, SKU))

    device.client.publish(device.topic(), image_bytes(3), qos=1).wait_for_publish(timeout=ANSWER_TIMEOUT_S)
    answer = device.answer()

    assert answer["status"] == 201 and answer["sku"] == SKU and answer["device"] == DEVICE


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
    first = shop.intake()
    first.start()  # the broker now keeps a session for this gateway
    first.stop()

    for seed in (10, 11, 12):
        device.publish(shop.topic(), image_bytes(seed))
    assert shop.images() == []

    again = shop.intake()
    again.start()
    try:
        answers = [device.answer() for _ in range(3)]
    finally:
        again.stop()
    assert [a["status"] for a in answers] == [201, 201, 201]
    assert len(shop.images()) == 3


def test_a_packet_over_the_broker_s_limit_never_reaches_the_intake(
    shop: Store, intake: MqttIntake, device: Device, running_site: Site
) -> None:
    big = Device(shop.site, OTHER_DEVICE, running_site.other_token)
    try:
        oversized = b"\xff\xd8\xff" + b"\0" * (shop.settings.uplink.max_image_bytes + PACKET_HEADROOM)
        big.client.publish(big.topic(), oversized, qos=1)
        device.publish(shop.topic(), image_bytes(13))

        assert device.answer()["status"] == 201
        with pytest.raises(queue.Empty):
            big.replies.get(timeout=2)  # the broker dropped the packet: no answer, nothing stored
    finally:
        big.close()
    assert len(shop.images()) == 1


def _connect(site: EdgeSite, client_id: str, login: tuple[str, str] | None) -> mqtt.ReasonCode:
    """The broker's answer to a CONNECT (its reason code), the client closed again."""
    answered: queue.Queue[mqtt.ReasonCode] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if login is not None:
        client.username_pw_set(*login)
    client.on_connect = lambda _c, _u, _f, reason, _p: answered.put(reason)
    client.connect(site.settings.uplink.mqtt_host, site.settings.uplink.mqtt_port)
    client.loop_start()
    try:
        return answered.get(timeout=ANSWER_TIMEOUT_S)
    finally:
        client.disconnect()
        client.loop_stop()


def test_an_anonymous_client_is_refused(site: EdgeSite) -> None:
    assert _connect(site, "anonymous", None).is_failure


def test_a_second_client_cannot_take_the_gateway_s_session(
    shop: Store, intake: MqttIntake, device: Device, running_site: Site
) -> None:
    with_a_guess = _connect(
        shop.site, gateway_user(shop.edge), (gateway_user(shop.edge), "a-guessed-password")
    )
    as_a_device = _connect(shop.site, gateway_user(shop.edge), (OTHER_DEVICE, running_site.other_token))
    device.publish(shop.topic(), image_bytes(30))

    assert with_a_guess.is_failure
    assert not as_a_device.is_failure  # it got in, but under its own name (the broker's client id)
    assert device.answer()["status"] == 201  # the gateway's session kept working


def test_a_device_cannot_publish_under_another_device_s_name(
    shop: Store, intake: MqttIntake, device: Device
) -> None:
    device.publish(f"edge/{shop.edge}/images/another-device/{SKU}", image_bytes(31))
    device.publish(shop.topic(), image_bytes(32))

    assert device.answer()["status"] == 201
    with pytest.raises(queue.Empty):
        device.answer()  # the broker dropped the other name's image: no answer, nothing stored
    assert len(shop.images()) == 1
