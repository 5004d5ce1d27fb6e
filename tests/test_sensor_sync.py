"""The gateway's sensor monitor follows the sensor model versions delivered to the edge bucket.

Real MinIO and Kafka (the stack), a real sensor model trained and exported to LiteRT here,
and the gateway's own composition (``serving.sensors``): versions are uploaded to the
edge bucket as the site's sync controller leaves them, and the sync is reconciled by hand.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgecore.stack import Stack
from edgecore.stack.mosquitto import MosquittoInstall
from edgecore.stack.settings import StackSettings
from edgecore.stack.site import EdgeSite
from edgecore.stack.tools import free_port
from foundation.errors import InvalidInput
from foundation.layout import MANIFEST, TFLITE_FILE, Layout, Location, sensor_model_name
from foundation.manifest import Manifest
from foundation.registry import read_pointer
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from serving.sensor_sync import SensorModelSync, SensorSlot, roll_back, unpin
from serving.sensors import monitor_of, sensor_outlets
from testkit.conditions import wait_for
from testkit.delivery import corrupt_in_place
from testkit.sensors import ExportedSensorModel, export_sensor_model_for, telemetry_readings
from testkit.serving import upload_version

MACHINE = "press-1"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ExportedSensorModel:
    return export_sensor_model_for(MACHINE, tmp_path_factory.mktemp("sensor-model") / "export", 11)


class Site:
    """One edge's bucket, with the gateway's slot and sync built as the gateway builds them."""

    def __init__(
        self, settings: Settings, workdir: Path, model: ExportedSensorModel, edge: str | None = None
    ) -> None:
        self.edge = edge or f"sensync{uuid.uuid4().hex[:10]}"
        self.settings, self.workdir, self.model = settings, workdir, model
        self.store, self.layout = ObjectStore(settings.s3), Layout(settings.buckets)
        self.outlets = sensor_outlets(settings, self.edge)

    def gateway(self) -> tuple[SensorSlot, SensorModelSync]:
        """A freshly started gateway's slot and sync (nothing loaded yet)."""
        slot = SensorSlot(self.outlets.metrics)
        work = self.workdir / "gateway" / uuid.uuid4().hex[:6]
        sync = SensorModelSync(
            self.edge, self.store, self.layout, work, slot, lambda folder: monitor_of(self.outlets, folder)
        )
        return slot, sync

    def deliver(self, version: str) -> Location:
        """The exported model as version ``version`` of the edge's sensor model, in its bucket."""
        root = self.workdir / version
        shutil.copytree(self.model.folder, root)
        template = Manifest.from_bytes((root / MANIFEST).read_bytes(), str(root))
        named = template.model_copy(update={"name": sensor_model_name(self.edge), "version": version})
        (root / MANIFEST).write_bytes(named.to_bytes())
        prefix = self.layout.edge_model_prefix(self.edge, sensor_model_name(self.edge), version)
        upload_version(self.store, prefix, root)
        return prefix

    def serving(self) -> str | None:
        pointer = read_pointer(self.store, self.layout, self.edge, sensor_model_name(self.edge))
        return pointer.version if pointer else None

    def rejected(self) -> str | None:
        pointer = read_pointer(self.store, self.layout, self.edge, sensor_model_name(self.edge))
        return pointer.rejected_version if pointer else None


@pytest.fixture
def site(stack: Stack, settings: Settings, tmp_path: Path, model: ExportedSensorModel) -> Iterator[Site]:
    site = Site(settings, tmp_path, model)
    yield site
    site.outlets.producer.close()


def _readings(count: int = 40) -> bytes:
    return json.dumps({"readings": telemetry_readings(MACHINE, 3, 0, count)}).encode()


def test_before_any_version_is_delivered_readings_are_answered_unavailable(site: Site) -> None:
    slot, sync = site.gateway()

    assert sync.reconcile() == "nothing-published"
    answer = slot.take("dev-1", MACHINE, _readings())

    assert answer["status"] == 503 and "no sensor model" in answer["reason"]


def test_a_delivered_version_is_verified_loaded_and_scores_readings(site: Site) -> None:
    slot, sync = site.gateway()
    site.deliver("v000001")

    assert sync.reconcile() == "rolled-out"
    answer = slot.take("dev-1", MACHINE, _readings())

    assert (slot.version, site.serving()) == ("v000001", "v000001")
    assert answer["status"] == 202 and answer["readings"] == 40


def test_a_newer_version_replaces_the_one_scoring_and_is_not_loaded_twice(site: Site) -> None:
    slot, sync = site.gateway()
    site.deliver("v000001")
    sync.reconcile()
    first = slot.monitor
    site.deliver("v000002")

    outcomes = [sync.reconcile(), sync.reconcile()]

    assert outcomes == ["rolled-out", "up-to-date"]
    assert slot.version == "v000002" and slot.monitor is not first
    assert slot.take("dev-1", MACHINE, _readings())["status"] == 202


def test_a_damaged_version_is_refused_for_good_and_the_one_before_keeps_scoring(site: Site) -> None:
    slot, sync = site.gateway()
    site.deliver("v000001")
    sync.reconcile()
    damaged = site.deliver("v000002")
    corrupt_in_place(site.store, damaged.child(TFLITE_FILE), b"not a flatbuffer")

    outcomes = [sync.reconcile(), sync.reconcile()]

    assert outcomes == ["refused", "skipped-rejected"]
    assert (slot.version, site.serving(), site.rejected()) == ("v000001", "v000001", "v000002")
    assert slot.take("dev-1", MACHINE, _readings())["status"] == 202


def test_a_restarted_gateway_scores_with_the_version_that_served_before(site: Site) -> None:
    _, sync = site.gateway()
    site.deliver("v000001")
    sync.reconcile()

    slot, restarted = site.gateway()
    outcome = restarted.reconcile()

    assert outcome == "up-to-date" and slot.version == "v000001"
    assert slot.take("dev-1", MACHINE, _readings())["status"] == 202


def test_an_operator_s_rollback_puts_the_running_gateway_back_on_the_version_before_and_holds_it(
    site: Site,
) -> None:
    slot, sync = site.gateway()
    for version in ("v000001", "v000002"):
        site.deliver(version)
        sync.reconcile()

    roll_back(site.store, site.layout, site.edge)
    outcomes = [sync.reconcile(), sync.reconcile()]

    assert outcomes == ["pinned", "pinned"] and slot.version == "v000001"
    assert (site.serving(), site.rejected()) == ("v000001", "v000002")
    assert slot.take("dev-1", MACHINE, _readings())["status"] == 202


def test_after_unpinning_the_next_version_rolls_out_and_the_one_left_never_does(site: Site) -> None:
    slot, sync = site.gateway()
    for version in ("v000001", "v000002"):
        site.deliver(version)
        sync.reconcile()
    roll_back(site.store, site.layout, site.edge)
    sync.reconcile()

    unpin(site.store, site.layout, site.edge)
    left = sync.reconcile()
    site.deliver("v000003")

    assert (left, sync.reconcile(), slot.version) == ("skipped-rejected", "rolled-out", "v000003")


def test_a_gateway_with_no_version_before_cannot_be_rolled_back(site: Site) -> None:
    _, sync = site.gateway()
    site.deliver("v000001")
    sync.reconcile()

    with pytest.raises(InvalidInput, match="no version before"):
        roll_back(site.store, site.layout, site.edge)


def test_a_store_gateway_started_with_sensors_scores_readings_with_the_version_its_bucket_receives(
    stack: Stack, settings: Settings, tmp_path: Path, model: ExportedSensorModel
) -> None:
    if MosquittoInstall(StackSettings()).binary() is None:
        pytest.skip("no mosquitto on this machine (no system package and no apt-get to fetch one)")
    site = EdgeSite(settings.updated(state_dir=tmp_path / "core"), f"sensite{uuid.uuid4().hex[:6]}")
    token = site.issue_gateway_token("device", "dev-1")
    metrics_port = free_port()
    shop = site.settings.updated(
        delivery={"poll_s": 0.5}, uplink={"gateway_port": free_port(), "gateway_metrics_port": metrics_port}
    )
    command = ["edge", "gateway", "--edge", site.edge, "--mqtt", "--sensors", "--no-ship"]
    with ExitStack() as running:
        site.up()
        running.callback(site.down)
        gateway = subprocess.Popen(
            [str(Path(sys.executable).parent / "edgecore"), *command],
            env={**os.environ, **shop.environment()},
            stdout=(tmp_path / "gateway.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        running.callback(gateway.wait, 60)
        running.callback(gateway.terminate)
        device = _device(shop, "dev-1", token)
        running.callback(device.loop_stop)
        running.callback(device.disconnect)
        edge_site = Site(shop, tmp_path / "delivered", model, site.edge)
        running.callback(edge_site.outlets.producer.close)
        edge_site.deliver("v000001")
        wait_for(edge_site.serving, 120, what="the gateway to load v000001")
        topic = f"edge/{site.edge}/sensors/dev-1/{MACHINE}"

        def sent_and_scored() -> float:
            """A brand-new gateway's intake may subscribe after its model loaded: the device sends
            again until the readings are scored (the monitor skips readings it already took)."""
            device.publish(topic, _readings(2 * model.spec.window), qos=1).wait_for_publish(timeout=30)
            return _windows_scored(metrics_port)

        scored = wait_for(sent_and_scored, 60, every_s=2.0, what="windows scored in the gateway process")

        kept = shop.state_dir / "telemetry" / site.edge / "open.csv"
        assert scored > 0
        assert kept.read_text().count(f",{MACHINE},") == 2 * model.spec.window  # kept for the core


def _device(settings: Settings, name: str, token: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
    client.username_pw_set(name, token)
    client.connect(settings.uplink.mqtt_host, settings.uplink.mqtt_port)
    client.loop_start()
    wait_for(client.is_connected, 10, what="the device's MQTT session")
    return client


def _windows_scored(port: int) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    found = re.search(
        rf'^edgecore_sensor_windows_total{{[^}}]*machine="{MACHINE}"[^}}]*}} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0
