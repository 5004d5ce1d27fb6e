"""The gateway's sensor monitor follows the sensor model versions delivered to the edge bucket.

Real MinIO and Kafka (the stack), a real sensor model trained and exported to LiteRT here,
and the gateway's own composition (``serving.sensors``): versions are uploaded to the
edge bucket as the site's sync controller leaves them, and the sync is reconciled by hand.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecore.stack import Stack
from foundation.layout import MANIFEST, TFLITE_FILE, Layout, Location, sensor_model_name
from foundation.manifest import Manifest
from foundation.registry import read_pointer
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from serving.sensor_sync import SensorModelSync, SensorSlot
from serving.sensors import monitor_of, sensor_outlets
from testkit.delivery import corrupt_in_place
from testkit.sensors import ExportedSensorModel, export_sensor_model_for, telemetry_readings
from testkit.serving import upload_version

MACHINE = "press-1"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ExportedSensorModel:
    return export_sensor_model_for(MACHINE, tmp_path_factory.mktemp("sensor-model") / "export", 11)


class Site:
    """One edge's bucket, with the gateway's slot and sync built as the gateway builds them."""

    def __init__(self, settings: Settings, workdir: Path, model: ExportedSensorModel) -> None:
        self.edge = f"sensync{uuid.uuid4().hex[:8]}"
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
