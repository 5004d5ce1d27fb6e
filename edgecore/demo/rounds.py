"""The demo's story: two stores, round 1 (first models), round 2 (a new product), then their machines
(``edgecore.demo.sensor_story``).

Each wait has a deadline and checks the services are still alive, so a broken stage
ends the demo with a reason instead of hanging; every figure in the summary is
measured here, from the services' own answers and events.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.status import Status

from edgecore.demo.devices import KIOSK_INDEX, Kiosk, KioskLog, Store, digest, photos
from edgecore.demo.sensor_story import SensorResult, SensorStory
from edgecore.demo.services import start_services
from edgecore.demo.supervisor import DemoFailed, Supervisor, http_ok
from edgecore.demo.watch import EventLog, gate_stopped, local_runs
from edgecore.demo.world import World
from edgecore.stack import enable_notifications
from edgecore.synthetic.products import NEW_PRODUCT_EDGE, demo_catalogue, new_product
from foundation.assortment import add_products
from foundation.errors import NotFound
from foundation.events import ModelPublished
from foundation.layout import Layout
from foundation.messaging import ensure_topics
from foundation.pointer import ModelPointer
from foundation.registry import newest_version
from foundation.storage.store import ObjectStore

T = TypeVar("T")
TRAINING_PIPELINE = "edgecore-training"
GATE_GRACE_S = 60.0
"""A finished run's model-published event is out well within this."""
PROBE_INDEX = 200_000
"""Probe photos (the controllers' smoke test) come from yet another index range."""


@dataclass(frozen=True)
class Options:
    images: int = 40
    """Training photos per product."""
    kiosk_photos: int = 4
    """Kiosk photos per product and round."""
    epochs: int = 40
    seed: int = 7
    coalesce_s: float = 30.0
    stage_timeout_s: float = 1800.0
    min_kiosk_accuracy: float = 0.8


@dataclass
class RoundResult:
    round: int
    edge: str
    version: str
    accuracy: float | None
    ready_to_serving_s: float | None
    kiosk: KioskLog
    note: str = ""


class Demo:
    def __init__(self, world: World, supervisor: Supervisor, options: Options, console: Console) -> None:
        self.world = world
        self.sup = supervisor
        self.opt = options
        self.console = console
        self.settings = world.settings
        self.store = ObjectStore(world.settings.s3)
        self.layout = Layout(world.settings.buckets)
        self.edges = list(world.edges)
        self.tokens: dict[str, tuple[str, str]] = {}
        """Each store's (device token, staff token) at its gateway."""
        self.plc_tokens: dict[str, str] = {}
        """Each store's token of the device that publishes its machines' readings."""
        self.results: list[RoundResult] = []
        # Rendering photos is CPU work; Ctrl-C is the demo's to handle, not the renderers'.
        self._pool = ProcessPoolExecutor(
            max_workers=2, initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN)
        )

    # -- the story ---------------------------------------------------------------------
    def run(self) -> tuple[list[RoundResult], list[SensorResult]]:
        """Both use cases on the same services: the machines' first models train while the stores
        photograph their products; the sensor story plays after the photos' second round."""
        self.say(f"demo run [bold]{self.world.run_id}[/bold]: state in {self.world.state_dir}")
        self.prepare()
        self.start_core()
        events = EventLog(self.settings, self.edges)
        stores = {edge: Store(edge, self.world.gateway_url(edge), *self.tokens[edge]) for edge in self.edges}
        kiosks = {edge: Kiosk(self.world.server_url(edge), self.world.model(edge)) for edge in self.edges}
        machines = SensorStory(self.world, self, self.plc_tokens)
        try:
            machines.upload_history()
            self.round_one(events, stores, kiosks)
            self.round_two(events, stores[NEW_PRODUCT_EDGE], kiosks[NEW_PRODUCT_EDGE])
            self.say("[bold]the machines[/bold]: sensor readings, alarms and staff's verdicts")
            sensors = machines.run(events, stores)
        finally:
            events.close()
            for store in stores.values():
                store.close()
            for kiosk in kiosks.values():
                kiosk.close()
            self._pool.shutdown(cancel_futures=True)
        return self.results, sensors

    def prepare(self) -> None:
        """Core buckets and topics; each store's site, enrolment, catalogue, probe photos and fleet file."""
        for bucket in (self.settings.buckets.training, self.settings.buckets.models):
            self.store.ensure_bucket(bucket)
        enable_notifications(self.store, self.settings.buckets.training)  # how telemetry is announced
        ensure_topics(self.settings.kafka)
        for edge in self.edges:
            with self.status(f"{edge}: starting its site (its own MinIO) and enrolling it at the core"):
                camera, plc, staff = self.world.open_site(edge)
                self.tokens[edge], self.plc_tokens[edge] = (camera, staff), plc
            self.set_catalogue(edge, with_new_product=False)
            skus = demo_catalogue(edge, with_new_product=True).skus
            for sku in skus:
                folder = self.world.probes_dir(edge) / sku
                folder.mkdir(parents=True, exist_ok=True)
                for i, image in enumerate(
                    photos(self._pool, self.opt.seed, edge, sku, [PROBE_INDEX, PROBE_INDEX + 1])
                ):
                    (folder / f"probe-{i}.jpg").write_bytes(image)
        self.world.write_fleets()

    def set_catalogue(self, edge: str, with_new_product: bool) -> None:
        """What the store's manager does in the back office: the store now sells these too."""
        home = self.layout.edge_catalogue_home(edge)
        products = demo_catalogue(edge, with_new_product).products
        add_products(self.world.site_store(edge), home, products, by="back office")

    def start_core(self) -> None:
        w = self.world
        with self.status("starting the core's services, each store's gateway and sync controller"):
            start_services(w, self.sup, self.opt.epochs)
            self.sup.wait_ready(self.opt.stage_timeout_s)
        gateways = ", ".join(f"{e} (gateway {w.gateway_url(e)})" for e in self.edges)
        self.say(f"core: front door {self.settings.door.url} (TLS), listener; stores: {gateways}")
        self.say("; ".join(w.pages()))

    def round_one(self, events: EventLog, stores: dict[str, Store], kiosks: dict[str, Kiosk]) -> None:
        self.say("[bold]round 1[/bold]: the stores photograph their products and send them to the core")
        for edge in self.edges:
            self.upload(stores[edge], demo_catalogue(edge).skus, range(self.opt.images))
        for edge in self.edges:
            self.complete(stores[edge], demo_catalogue(edge).skus)
        for store in stores.values():
            store.wait_shipped(self.opt.stage_timeout_s)
        self.say("sets shipped; the core trains one model per store")
        published = {edge: self.wait_published(events, edge, None) for edge in self.edges}
        for edge, event in published.items():
            self.start_server(edge, event)
        with self.status("starting the stores' model servers"):
            self.sup.wait_ready(self.opt.stage_timeout_s)
        for edge, event in published.items():
            self.serve_and_ask(1, edge, event, events, kiosks[edge], demo_catalogue(edge).skus)

    def round_two(self, events: EventLog, store: Store, kiosk: Kiosk) -> None:
        edge = store.edge
        new = new_product().sku
        before = next(r for r in self.results if r.edge == edge and r.round == 1)
        self.say(f"[bold]round 2[/bold]: {edge} starts selling {new_product().name} ({new})")
        # Customers show the new product before the model knows it: the server keeps
        # the photos it is unsure of; staff label them through the gateway.
        shown = self.kiosk_photos(edge, [new], 1)[new]
        unsure = 0
        for image in shown:
            answer, _ = kiosk.ask(image)
            unsure += not answer["predictions"][0]["recognized"]
        labelled = self.label_captures(store, {digest(i) for i in shown}, new, expected=unsure)
        self.say(
            f"the round-1 model was unsure of {unsure} of {len(shown)} kiosk photos of {new};"
            f" staff labelled {labelled}"
        )
        self.set_catalogue(edge, with_new_product=True)
        self.upload(store, [new], range(self.opt.images))
        self.complete(store, [new])
        store.wait_shipped(self.opt.stage_timeout_s)
        event = self.wait_published(events, edge, before.version)
        log = self.serve_and_ask(2, edge, event, events, kiosk, demo_catalogue(edge, True).skus)
        old = demo_catalogue(edge).skus
        old_right = sum(sum(log.per_sku[s]) for s in old) / sum(len(log.per_sku[s]) for s in old)
        self.results[-1].note = (
            f"{new} recognised {log.accuracy_of(new):.0%}, old products {old_right:.0%};"
            f" {labelled} hard examples"
        )
        if log.accuracy_of(new) < self.opt.min_kiosk_accuracy:
            raise DemoFailed(
                f"{edge}: the new product {new} was recognised in only"
                f" {log.accuracy_of(new):.0%} of kiosk photos"
            )

    # -- stages ------------------------------------------------------------------------
    def serve_and_ask(
        self, round_: int, edge: str, event: ModelPublished, events: EventLog, kiosk: Kiosk, skus: list[str]
    ) -> KioskLog:
        """Wait for the store to serve the version, then let its kiosks ask; record the round."""
        served_at = self.wait_serving(kiosk, edge, event.version)
        log = kiosk.session(self.kiosk_photos(edge, skus, round_ * 2), KioskLog())
        since = self.since_ready(events, edge, served_at)
        self.results.append(
            RoundResult(round_, edge, event.version, event.metrics.get("accuracy"), since, log)
        )
        self.check_kiosks(edge, log)
        return log

    def upload(self, store: Store, skus: list[str], indices: range) -> None:
        """The devices post their photos; the sets stay open until :meth:`complete`."""
        with self.progress() as bar:
            task = bar.add_task(f"{store.edge}: photos to the gateway", total=len(skus) * len(indices))
            for sku in skus:
                store.upload(sku, photos(self._pool, self.opt.seed, store.edge, sku, indices))
                bar.advance(task, len(indices))
                self.sup.check()

    def complete(self, store: Store, skus: list[str]) -> None:
        """Staff mark each product's photos complete: one set each, shipped to the core.

        Completing them together (not as each product's photos arrive) lets the
        listener's coalescing window train on all of them in one run.
        """
        for sku in skus:
            store.complete(sku)

    def kiosk_photos(self, edge: str, skus: list[str], round_: int) -> dict[str, list[bytes]]:
        start = KIOSK_INDEX + round_ * 1000
        return {
            sku: photos(self._pool, self.opt.seed, edge, sku, range(start, start + self.opt.kiosk_photos))
            for sku in skus
        }

    def wait_published(
        self,
        events: EventLog,
        edge: str,
        newer_than: str | None,
        model: str | None = None,
        pipeline: str = TRAINING_PIPELINE,
    ) -> ModelPublished:
        """Until ``model`` (the store's product model unless named) has a version newer than
        ``newer_than``; a run of ``pipeline`` for the store that failed, or passed no gate, fails it."""
        model = model or self.world.model(edge)
        with self.status(f"{edge}: training, evaluating and publishing {model} (kfp.local)"):
            since = time.time()
            done_at: float | None = None

            def found() -> ModelPublished | None:
                nonlocal done_at
                newer = [e for e in events.published(model) if newer_than is None or e.version > newer_than]
                if newer:
                    return newer[-1]
                runs = local_runs(self.world.state_dir, since, pipeline, edge)
                for run in runs:
                    if run.outcome is not None and run.outcome["state"] != "SUCCEEDED":
                        raise DemoFailed(f"{edge}: a run of {pipeline} failed: {run.outcome.get('error')}")
                if not runs or any(run.outcome is None for run in runs):
                    done_at = None  # a run still going, on newer data, may yet publish
                    return None
                done_at = done_at or time.time()
                if time.time() - done_at > GATE_GRACE_S:
                    raise DemoFailed(
                        f"{edge}: the run finished but published no new {model}: {gate_stopped(runs, edge)}"
                    )
                return None

            event = self.wait(found, f"{edge}: a new version of {model}")
        shown = ("accuracy",) if "accuracy" in event.metrics else ("precision", "recall", "false_alarm_rate")
        figures = ", ".join(
            f"{k.replace('_', ' ')} {event.metrics[k]:.3f}" for k in shown if k in event.metrics
        )
        self.say(f"{edge}: {model} {event.version} published ({figures})")
        return event

    def start_server(self, edge: str, event: ModelPublished) -> None:
        """A fresh store's model server starts once its controller pulled a first model into the site."""
        w = self.world
        folder = self.layout.edge_models_prefix(edge, w.model(edge))
        pulled = f"{edge}: the sync controller pulls {event.version} into the store's storage"
        with self.status(pulled):
            self.wait(lambda: newest_version(self.world.site_store(edge), folder) is not None or None, pulled)
        self.sup.launch(
            f"server-{edge}",
            ["serve", "start", "--edge", edge, "--port", str(w.edges[edge].server)],
            w.sites[edge].environment(),
            http_ok(f"{w.server_url(edge)}/v2/models/{w.model(edge)}/ready"),
        )

    def wait_serving(self, kiosk: Kiosk, edge: str, version: str) -> float:
        """Until the controller has verified the version and the server answers with it."""
        probe = next(iter(sorted((self.world.probes_dir(edge)).glob("*/probe-0.jpg")))).read_bytes()
        pointer_at = self.layout.edge_model_pointer(edge, self.world.model(edge))

        def synced() -> bool:
            try:
                pointer = ModelPointer.from_bytes(
                    self.world.site_store(edge).get_bytes(pointer_at, max_bytes=65536), pointer_at.uri
                )
            except NotFound:
                return False
            if pointer.rejected_version == version:
                raise DemoFailed(
                    f"{edge}: the sync controller rolled {version} back (its probe check failed);"
                    f" last lines of its log:\n{self.sup.tail(f'sync-{edge}', 6)}"
                )
            return (
                pointer.version == version
                and pointer.synced_at is not None
                and kiosk.serving_version(probe) == version
            )

        with self.status(f"{edge}: the sync controller verifies {version} and swaps it in"):
            self.wait(lambda: synced() or None, f"{edge}: serving {version}")
        self.say(f"{edge}: serving {version}")
        return time.time()

    def since_ready(self, events: EventLog, edge: str, served_at: float) -> float | None:
        """From the newest training-data-ready of the store's dataset to its kiosks answering."""
        ready = [s for s in events.ready(edge) if s.received <= served_at]
        if not ready:
            return None
        return served_at - max(s.envelope.time.timestamp() for s in ready)

    def label_captures(self, store: Store, shown: set[str], sku: str, expected: int) -> int:
        """Staff go through the captured photos and label the ones of the new product."""
        prefix = self.layout.unrecognized_prefix(store.edge)
        site_store = self.world.site_store(store.edge)
        digests: dict[str, str] = {}  # key -> sha256: each capture is downloaded once

        def captured() -> list[tuple[str, str]]:
            found = []
            for obj in site_store.list(prefix):
                key = obj.location.key
                if key.endswith(".jpg"):
                    if key not in digests:
                        digests[key] = digest(site_store.get_bytes(obj.location))
                    if digests[key] in shown:
                        day, name = key.split("/")[-2:]
                        found.append((day, name.removesuffix(".jpg")))
            return found

        deadline = time.monotonic() + 30
        found = captured()
        while len(found) < expected and time.monotonic() < deadline:
            time.sleep(0.5)
            found = captured()
        for day, capture_id in found:
            store.label(day, capture_id, sku)
        return len(found)

    def check_kiosks(self, edge: str, log: KioskLog) -> None:
        self.say(f"{edge}: kiosks {log.right}/{log.asked} right, p50 {log.p50_ms:.1f} ms")
        if log.with_price != log.asked:
            raise DemoFailed(f"{edge}: {log.asked - log.with_price} kiosk answers came without a price")
        if log.accuracy < self.opt.min_kiosk_accuracy:
            missed = {sku: f"{log.accuracy_of(sku):.0%}" for sku in log.per_sku if log.accuracy_of(sku) < 1}
            raise DemoFailed(f"{edge}: kiosks got only {log.accuracy:.0%} right (per SKU: {missed})")

    # -- plumbing ----------------------------------------------------------------------
    def wait(self, check: Callable[[], T | None], what: str) -> T:
        deadline = time.monotonic() + self.opt.stage_timeout_s
        while True:
            found = check()
            if found:
                return found
            self.sup.check()
            if time.monotonic() > deadline:
                raise DemoFailed(
                    f"{what}: not reached after {self.opt.stage_timeout_s:.0f} s; the services' last"
                    f" log lines:\n{self.sup.tails()}"
                )
            time.sleep(1.0)

    def say(self, message: str) -> None:
        self.console.print(f"[dim]{datetime.now(UTC):%H:%M:%S}[/dim] [cyan]•[/cyan] {message}")

    def status(self, message: str) -> Status:
        return self.console.status(message)

    def progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
