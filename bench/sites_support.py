"""What bench/sync_sites.py sets up and tears down: a core with its front door, two enrolled
store sites with their model servers and controllers, and the versions put into the registry
and announced as the publish step does."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaAdminClient
from sync_support import console, drop_buckets

from edge_sync.delivery.edges import EdgeSpec, LocalSpec
from edge_sync.delivery.fleet import ControllerFleet
from edge_sync.delivery.metrics import SyncMetrics
from edge_sync.delivery.service import build_fleet
from edgecore.demo.supervisor import Supervisor, http_ok
from edgecore.enrolment import enrol, revoke
from edgecore.images.modelcar_base import BUSYBOX
from edgecore.stack import Stack
from edgecore.stack.site import ENROLMENT_FILE, EdgeSite
from edgecore.stack.tools import free_port
from foundation.events import ModelPublished
from foundation.layout import MANIFEST, Layout, edge_model_name
from foundation.manifest import Manifest, entries_for_dir
from foundation.messaging import EventProducer, connection
from foundation.modelcar import core_registry, push_base, pusher
from foundation.oci import Reference
from foundation.registry import newest_version
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.conditions import wait_for

REPO = Path(__file__).resolve().parents[1]
STORES = ("east", "west")
TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Pull:
    """One pull of a site's controllers: which path asked, when, and what it brought (None: nothing)."""

    edge: str
    by: str
    started: float
    ended: float
    got: str | None


@dataclass
class Site:
    """One store: its site (MinIO, enrolment), its model server and its controllers."""

    edge: str
    site: EdgeSite
    url: str = field(default_factory=lambda: f"http://127.0.0.1:{free_port()}")
    fleet: ControllerFleet | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    runner: threading.Thread | None = None

    @property
    def model(self) -> str:
        return edge_model_name(self.edge)

    @property
    def probes(self) -> Path:
        return self.site.folder / "probes"

    @property
    def store(self) -> ObjectStore:
        """The store's own storage, with the store's credentials."""
        return ObjectStore(self.site.settings.s3)

    def spec(self) -> EdgeSpec:
        return EdgeSpec(edge=self.edge, target=LocalSpec(url=self.url, probes=self.probes))


@dataclass
class Core:
    """The run's core: settings, registry, supervised services (door, servers), the sites, the pulls."""

    tag: str
    settings: Settings
    sup: Supervisor
    sites: list[Site]
    pad_mb: int
    enrolled: list[str] = field(default_factory=list)
    pulls: list[Pull] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store, self.layout = ObjectStore(self.settings.s3), Layout(self.settings.buckets)


@dataclass(frozen=True)
class Row:
    version: str
    mb: float
    pull_s: float  # both edges pulling at once, until the slower is done
    answer_s: dict[str, float]
    delivered_by: dict[str, str]

    @property
    def end_to_end(self) -> float:
        return max(self.answer_s.values())


# -- setting up: the core, its door, two enrolled sites, their servers and controllers -------
def core_settings(tag: str, modelcars: bool = False) -> Settings:
    """The run's own buckets, topics and door port; the stack's MinIO, Kafka, CA and certificate;
    with ``modelcars``, the run's own repositories in the stack's registry."""
    base = Settings()
    door_port = free_port()
    registry = Stack(base).registry
    certs = registry.client_certs()
    modelcar = {
        "registry": f"{registry.address}/bench{tag}" if modelcars else "",
        "ca_file": certs / "ca.crt",
        "cert_file": certs / "client.cert",
        "key_file": certs / "client.key",
    }
    return base.updated(
        modelcar=modelcar,
        state_dir=Path(tempfile.mkdtemp(prefix="edge-sync-sites-")),
        buckets={"training": f"bsites-{tag}-training", "models": f"bsites-{tag}-models"},
        kafka={
            "topic_model_published": f"bench-sites-published-{tag}",
            "topic_dead_letter": f"bench-sites-dlq-{tag}",
            "topic_training_data_ready": f"bench-sites-ready-{tag}",
            "topic_s3_events": f"bench-sites-s3-{tag}",
        },
        door={"port": door_port, "url": f"https://127.0.0.1:{door_port}"},
        tls={"ca_file": base.ca_file, "cert_file": base.cert_file, "key_file": base.key_file},
    )


def open_sites(core: Core) -> None:
    """Each store's MinIO, its enrolment (door token, Kafka login) and probe photos; then the door."""
    from testkit.serving import LABELS, kiosk_jpeg

    for s in core.sites:
        s.site.up(mqtt=False)
        enrol(core.settings, s.edge, s.site.folder / ENROLMENT_FILE)
        core.enrolled.append(s.edge)
        s.site.refresh()
        for k, label in enumerate(LABELS):
            (s.probes / label).mkdir(parents=True)
            (s.probes / label / "probe.jpg").write_bytes(kiosk_jpeg(label, 700_000 + k))
    if core.settings.modelcar.registry:  # as `edgecore images build` pushes it
        base = Reference.parse(core.settings.modelcar_base)
        push_base(core_registry(core.settings), base, BUSYBOX)
    ready = http_ok(f"{core.settings.door.url}/healthz", str(core.settings.ca_file))
    core.sup.start("door", ["core", "door"], core.settings.environment(), ready)


def start_fleet(core: Core, s: Site) -> None:
    """The site's controllers as ``edgecore edges run`` builds them, from the site's settings only."""
    source = "oci" if core.settings.modelcar.registry else "s3"
    delivery = {"poll_s": 3600.0, "ready_timeout_s": 120.0, "model_source": source}
    settings = s.site.settings.updated(delivery=delivery)
    s.fleet = build_fleet(settings, [s.spec()], metrics=SyncMetrics())
    puller = s.fleet.pullers[s.edge]
    pull = puller.pull

    def watched(model: str, wait_s: float = 0.0, expect: str | None = None, keep: bool = True) -> str | None:
        started = time.perf_counter()  # records each pull, changes nothing
        got = pull(model, wait_s, expect, keep)
        by = "long poll" if threading.current_thread().name.startswith("edge-sync-door") else "event"
        core.pulls.append(Pull(s.edge, by, started, time.perf_counter(), got))
        return got

    puller.pull = watched  # type: ignore[method-assign]
    # an edge's consumer group is named after it (its Kafka ACLs), as run_fleet names it
    s.runner = threading.Thread(target=s.fleet.run, args=(s.stop, s.edge, 1.0), name=f"fleet-{s.edge}")
    s.runner.start()


def until(core: Core, check: Callable[[], Any], what: str) -> Any:
    """``wait_for`` that fails as soon as a supervised service (door, server) has died."""
    return wait_for(lambda: core.sup.check() or check(), TIMEOUT_S, 0.1, what)


def serving(s: Site, version: str) -> bool:
    """The controller confirmed ``version`` and the server answers a kiosk photo with it."""
    outcome = s.fleet.outcomes.get(s.edge) if s.fleet else None
    if outcome is None or outcome.serving != version or outcome.action not in ("rolled-out", "up-to-date"):
        return False
    with httpx.Client(timeout=30) as http:
        return answer_version(s, http) == version


def group_joined(admin: KafkaAdminClient, group: str) -> bool:
    info = admin.describe_groups([group]).get(group, {})
    return info.get("group_state") == "Stable" and bool(info.get("members"))


def start_sites(core: Core) -> None:
    """v000001 published, pulled by each site into its MinIO, served; consumers in their groups."""
    for s in core.sites:
        announce(core, None, put_files(core, version_dir(core, s.edge, 1)))
        start_fleet(core, s)
    for s in core.sites:
        folder = Layout(s.site.settings.buckets).edge_models_prefix(s.edge, s.model)
        until(core, lambda s=s, f=folder: newest_version(s.store, f), f"{s.edge}: v000001 pulled")
        ready = http_ok(f"{s.url}/v2/models/{s.model}/ready")
        args = ["serve", "start", "--edge", s.edge, "--port", s.url.rsplit(":", 1)[1], "--no-capture"]
        core.sup.launch(f"server-{s.edge}", args, s.site.environment(), ready)
    core.sup.wait_ready(TIMEOUT_S)
    admin = KafkaAdminClient(**connection(core.settings.kafka), client_id="bench-sync-sites")
    try:
        for s in core.sites:
            assert s.fleet is not None
            s.fleet.schedule_all()  # what the next poll would do: the server is up now
            until(core, lambda s=s: serving(s, "v000001"), f"{s.edge}: serving v000001")
            group = f"edgecore-edge-sync-{s.edge}"
            until(core, lambda g=group: group_joined(admin, g), f"{s.edge}: consumer group {group}")
    finally:
        admin.close()


# -- a version: built, put into the core registry, announced ---------------------------------
def version_dir(core: Core, edge: str, number: int) -> Path:
    """A real trained version for ``edge``, padded so that its pull weighs what a real model's does."""
    from testkit.serving import write_version

    version = f"v{number:06d}"
    path = core.settings.state_dir / "versions" / edge / version
    root = Path(write_version(path, edge, version, seed=number % 2))
    if core.pad_mb:
        (root / "padding.bin").write_bytes(os.urandom(core.pad_mb * 1_048_576))
        old = Manifest.from_bytes((root / MANIFEST).read_bytes(), str(root))
        (root / MANIFEST).write_bytes(old.model_copy(update={"files": entries_for_dir(root)}).to_bytes())
    return root


def put_files(core: Core, root: Path) -> Manifest:
    """Every file of the version in the registry, but not the manifest: no edge can see it yet."""
    manifest = Manifest.from_bytes((root / MANIFEST).read_bytes(), str(root))
    prefix = core.layout.model_prefix(manifest.name, manifest.version)
    store = core.store
    store.ensure_bucket(prefix.bucket)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda name: store.put_file(prefix.child(name), root / name), manifest.files))
    if core.settings.modelcar.registry:  # the publish step pushes it before the event
        push = pusher(core.settings, core_registry(core.settings))
        assert push is not None
        push(root, manifest)
    return manifest


def announce(core: Core, producer: EventProducer | None, manifest: Manifest) -> None:
    """The manifest last (the version now exists), then ``model-published`` as the publish step sends it."""
    prefix = core.layout.model_prefix(manifest.name, manifest.version)
    core.store.put_bytes(prefix.child(MANIFEST), manifest.to_bytes(), "application/json")
    if producer is None:
        return
    edge = str(manifest.metadata["edge"])
    event = ModelPublished(
        model=manifest.name,
        version=manifest.version,
        registry_uri=prefix.uri,
        edges=[edge],
        files={name: entry.sha256 for name, entry in manifest.files.items()},
        labels=manifest.labels,
        metrics=manifest.metrics,
    )
    kafka = core.settings.kafka
    producer.publish_all([kafka.topic_model_published, kafka.edge_topic(edge)], event)


# -- one round: event → both answer; then the pull alone -------------------------------------
def serves(s: Site, http: httpx.Client, version: str) -> bool:
    """Whether the site's server says ``version`` is the one it serves (V2 versioned ready: no inference)."""
    try:
        return http.get(f"{s.url}/v2/models/{s.model}/versions/{version}/ready").status_code == 200
    except httpx.HTTPError:
        return False


def answer_version(s: Site, http: httpx.Client) -> str | None:
    from testkit.serving import b64, kiosk_jpeg

    photo = {"instances": [{"image_bytes": {"b64": b64(kiosk_jpeg("LIME-GREEN", 1))}}]}
    try:
        return http.post(f"{s.url}/v1/models/{s.model}:predict", json=photo).json().get("model_version")
    except httpx.HTTPError:
        return None


# -- running it and cleaning up --------------------------------------------------------------
def attempt(what: str, step: Callable[[], object]) -> None:
    """One clean-up step: a failure is reported, and the other steps still run."""
    try:
        step()
    except Exception as exc:
        console.print(f"[yellow]clean-up: {what} failed: {exc}[/yellow]")


def clean_up(core: Core) -> None:
    """Controllers, then servers and door, then sites; the run's logins, core buckets and topics."""
    for s in core.sites:
        s.stop.set()
    for s in core.sites:
        if s.runner is not None:
            s.runner.join(30)
    attempt("stopping the door and servers", core.sup.stop_all)
    for s in core.sites:
        attempt(f"stopping site {s.edge}", s.site.down)
    for edge in core.enrolled:
        attempt(f"revoking {edge}", lambda edge=edge: revoke(core.settings, edge))
    buckets = {b["Name"] for b in core.store.client.list_buckets()["Buckets"]}
    ours = [b for b in (core.settings.buckets.training, core.settings.buckets.models) if b in buckets]
    attempt("dropping the core buckets", lambda: drop_buckets(core.store, ours))
    attempt("deleting the run's topics", lambda: delete_topics(core))


def delete_topics(core: Core) -> None:
    kafka = core.settings.kafka
    topics = [kafka.topic_model_published, kafka.topic_dead_letter, kafka.topic_training_data_ready]
    admin = KafkaAdminClient(**connection(kafka), client_id="bench-sync-sites")
    try:
        admin.delete_topics(
            [*topics, kafka.topic_s3_events, *(kafka.edge_topic(s.edge) for s in core.sites)],
            raise_errors=False,
        )
    finally:
        admin.close()
