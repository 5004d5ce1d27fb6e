"""The demo's sensor story, on the same stack and services as the photos: machines, alarms, a verdict.

Each store's compressors have two days of history, which an operator uploads at the core:
the listener trains a first sensor model per store, and each store's sync controller and
gateway take it up beside the product model.  Then, at one store, the machines' PLC
publishes live readings over MQTT: normal operation; a bearing starts wearing on
compressor-1 (a real fault: its alarm goes to Kafka within seconds); compressor-2 runs a
clean-in-place cycle the model never saw (a false alarm).  Staff confirm the first and
dismiss the second on the store page; the verdicts and the readings ship to the core, the
next round trains on them, and when compressor-2 washes again under the new version, no
alarm is raised.  Every figure comes from the services' answers and events.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from rich.status import Status

from edgecore.demo.devices import Store
from edgecore.demo.machines import (
    LIVE_H,
    MACHINES,
    READINGS_PER_MESSAGE,
    Device,
    Plan,
    history,
    live,
    readings,
)
from edgecore.demo.supervisor import DemoFailed
from edgecore.demo.watch import EventLog
from edgecore.demo.world import PLC, World
from edgecore.telemetry_upload import upload_telemetry
from foundation.errors import NotFound
from foundation.events import ModelPublished
from foundation.layout import Layout, sensor_model_name, telemetry_dataset
from foundation.manifest import Manifest
from foundation.registry import fetch_verified, read_pointer, read_version
from foundation.storage.store import ObjectStore
from foundation.telemetry import Telemetry, write_csv
from serving.alarms import Alarms
from serving.anomaly import WindowScorer
from serving.metrics import SensorMetrics
from serving.sensor_monitor import Alarm, Reading, SensorMonitor

T = TypeVar("T")
SENSORS_PIPELINE = "edgecore-sensors"
SEED = 500
CLEAR_H = 0.4
"""Normal running after the fault and the wash, so both alarms clear before staff judge them."""


class Narrator(Protocol):
    """The demo's waits and messages (``edgecore.demo.rounds.Demo``)."""

    def say(self, message: str) -> None: ...

    def status(self, message: str) -> Status: ...

    def wait(self, check: Callable[[], T | None], what: str) -> T: ...

    def wait_published(
        self, events: EventLog, edge: str, newer_than: str | None, model: str | None, pipeline: str
    ) -> ModelPublished: ...


class _Raised:
    """An alarm sink that keeps when each alarm was raised (``would_raise``)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def raised(self, alarm: Alarm) -> None:
        self.times.append(alarm.window_end.timestamp())

    def cleared(self, machine: str, at: datetime, flagged_until: datetime | None) -> None:
        pass


@dataclass
class SensorResult:
    edge: str
    first_version: str
    fault_to_alert_s: float | None = None
    """From publishing the fault's readings to its alarm's event on Kafka."""
    next_version: str = "-"
    note: str = ""


class SensorStory:
    def __init__(
        self, world: World, narrator: Narrator, plc_tokens: dict[str, str], plan: Plan = Plan()
    ) -> None:
        self.world = world
        self.tell = narrator
        self.plc_tokens = plc_tokens
        self.plan = plan
        self.core = ObjectStore(world.settings.s3)
        self.layout = Layout(world.settings.buckets)
        self.live_from = round(time.time() - LIVE_H * 3600 - 600)
        """The live hours end ten minutes before now: no reading is ever timed in the future."""

    def upload_history(self) -> None:
        """The operator's upload of each store's machine history: the first sensor models train."""
        with tempfile.TemporaryDirectory() as scratch:
            for i, edge in enumerate(self.world.edges):
                path = Path(scratch) / f"{edge}.csv"
                write_csv(history(SEED + 10 * i, self.live_from), path)
                manifest = upload_telemetry(self.core, self.layout, path, edge)
                self.tell.say(
                    f"{edge}: two days of its compressors' readings uploaded as"
                    f" {manifest.name} {manifest.version} ({manifest.metadata['fault_readings']} in faults)"
                )

    def run(self, events: EventLog, stores: dict[str, Store]) -> list[SensorResult]:
        results = {edge: SensorResult(edge, self.delivered(events, edge, None)) for edge in self.world.edges}
        edge = next(iter(self.world.edges))
        self.on_the_floor(events, stores[edge], results[edge])
        return list(results.values())

    def on_the_floor(self, events: EventLog, store: Store, result: SensorResult) -> None:
        edge, incident = store.edge, self.plan.incident_h
        site = self.world.sites[edge].settings.uplink
        series = live(SEED, self.live_from, self.plan)
        first, second = MACHINES
        device = Device(edge, PLC, self.plc_tokens[edge], site.mqtt_host, site.mqtt_port)
        try:
            self.tell.say(f"{edge}: its PLC publishes an hour of both compressors running normally")
            for machine in MACHINES:
                self.expect(device.publish(machine, readings(series[machine], 0, incident)), [], edge)
            result.fault_to_alert_s = self.fault(events, device, series[first], edge)
            self.expect(
                device.publish(second, readings(series[second], incident, incident + 0.5)), [second], edge
            )
            self.tell.say(f"{edge}: {second} runs a clean-in-place cycle: alarm raised (a false alarm)")
            resume = incident + 0.5
            for machine in MACHINES:
                self.expect(
                    device.publish(machine, readings(series[machine], resume, resume + CLEAR_H)), [], edge
                )
            self.judge(store, {first: "confirmed", second: "dismissed"})
            result.next_version = self.delivered(
                events, edge, result.first_version, self.verdicts_version(edge)
            )
            raised = device.publish(second, readings(series[second], resume + CLEAR_H, LIVE_H))
            if second in raised:
                raise DemoFailed(f"{edge}: {result.next_version} raised the alarm of {second}'s wash again")
            before = self.would_raise(edge, result.first_version, series[second], resume + CLEAR_H)
            self.tell.say(
                f"{edge}: {second} washes again under {result.next_version}: no alarm"
                f" ({result.first_version} {'would have raised one' if before else 'would not have either'})"
            )
            result.note = (
                f"{first}'s fault confirmed; {second}'s wash dismissed, then not raised again"
                f" ({result.first_version} would {'have' if before else 'not have either'})"
            )
        finally:
            device.close()

    def fault(self, events: EventLog, device: Device, series: Telemetry, edge: str) -> float:
        """compressor-1's bearing wears: the alarm, and how long until its event was on Kafka."""
        first, start = MACHINES[0], self.plan.incident_h
        sent = time.time()
        self.expect(device.publish(first, readings(series, start, start + 0.5)), [first], edge)
        _, received = self.tell.wait(
            lambda: next((a for a in events.anomalies(edge) if a[0].machine == first), None),
            f"{edge}: the alarm of {first} on Kafka",
        )
        latency = received - sent
        self.tell.say(f"{edge}: {first}'s bearing wears: alarm on Kafka {latency:.1f} s after its readings")
        return latency

    def would_raise(self, edge: str, version: str, series: Telemetry, since_h: float) -> bool:
        """Whether ``version`` raises the machine's alarm after ``since_h``, fed the same readings the
        gateway was (its own scoring code, here): what the next round changed, shown against what was."""
        site = self.world.site_store(edge)
        layout = Layout(self.world.sites[edge].settings.buckets)
        stored = read_version(site, layout.edge_model_prefix(edge, sensor_model_name(edge), version))
        with tempfile.TemporaryDirectory() as scratch:
            folder = fetch_verified(site, stored, Path(scratch) / version).path
            assert folder is not None
            scorer = WindowScorer(folder)
            kept = _Raised()
            monitor = SensorMonitor(
                scorer, Alarms(scorer.spec.alert_k, scorer.spec.alert_n), kept, SensorMetrics(edge)
            )
            for start in range(0, int(LIVE_H * 3600 / series.period_s), READINGS_PER_MESSAGE):
                hours = start * series.period_s / 3600
                chunk = readings(series, hours, hours + READINGS_PER_MESSAGE * series.period_s / 3600)
                monitor.readings(series.machine, [Reading.model_validate(r) for r in chunk])
        since = series.start + since_h * 3600
        return any(at >= since for at in kept.times)

    def judge(self, store: Store, verdicts: dict[str, str]) -> None:
        """Staff go through the alarms on the store page and give each its verdict."""
        waiting: dict[str, dict[str, Any]] = {}
        for alarm in store.alarms():  # newest first: each machine's newest alarm is the one judged
            waiting.setdefault(alarm["machine"], alarm)
        for machine, verdict in verdicts.items():
            if machine not in waiting:
                raise DemoFailed(f"{store.edge}: no alarm of {machine} waits for staff")
            store.judge(waiting[machine], verdict)
            self.tell.say(f"{store.edge}: staff {verdict} the alarm of {machine} on the store page")

    def verdicts_version(self, edge: str) -> str:
        """The version of the store's telemetry dataset that carries the last verdict, once shipped."""
        dataset = telemetry_dataset(edge)

        def shipped() -> str | None:
            found = [
                m.version
                for m in self._telemetry_manifests(dataset)
                if m.metadata.get("verdicts", {}).get("dismissed")
            ]
            return max(found) if found else None

        with self.tell.status(f"{edge}: the verdicts and readings ship to the core"):
            version = self.tell.wait(shipped, f"{edge}: the verdicts at the core")
        self.tell.say(f"{edge}: the verdicts are {dataset} {version}; the next round trains on them")
        return version

    def delivered(
        self, events: EventLog, edge: str, newer_than: str | None, trained_on: str | None = None
    ) -> str:
        """Until the store's gateway scores with a newer sensor model (one trained on ``trained_on``)."""
        model = sensor_model_name(edge)
        self.tell.wait_published(events, edge, newer_than, model, SENSORS_PIPELINE)
        site = self.world.site_store(edge)
        layout = Layout(self.world.sites[edge].settings.buckets)
        wanted = f"{telemetry_dataset(edge)}@{trained_on}" if trained_on else None

        def scoring() -> str | None:
            pointer = read_pointer(site, layout, edge, model)
            if pointer is None or (newer_than is not None and pointer.version <= newer_than):
                return None
            if wanted is not None:
                manifest = read_version(site, layout.edge_model_prefix(edge, model, pointer.version)).manifest
                if wanted not in manifest.metadata.get("datasets", []):
                    return None
            return pointer.version

        with self.tell.status(f"{edge}: training {model}, delivering it, and the gateway taking it up"):
            version = self.tell.wait(scoring, f"{edge}: its gateway scoring a new {model}")
        self.tell.say(f"{edge}: the gateway scores its machines' readings with {model} {version}")
        return version

    def _telemetry_manifests(self, dataset: str) -> list[Manifest]:
        manifests = []
        for obj in self.core.list(self.layout.datasets_prefix(dataset)):
            if obj.location.key.endswith("/manifest.json"):
                try:
                    manifests.append(Manifest.from_bytes(self.core.get_bytes(obj.location), obj.location.uri))
                except NotFound:
                    continue
        return manifests

    @staticmethod
    def expect(raised: list[str], wanted: list[str], edge: str) -> None:
        if sorted(set(raised)) != sorted(wanted):
            raise DemoFailed(
                f"{edge}: alarms raised {sorted(set(raised)) or 'none'}, expected {wanted or 'none'}"
            )
