"""The sync controllers' process: what ``edgecore edges run | status | rollback`` build and run.

Everything with I/O is made here, once, from the settings: one S3 reader shared by the
fleet, one Kubernetes API client per kubeconfig context, a target per edge, and the
fleet itself, which only composes them.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable

import httpx
from kubernetes import client

from edge_sync.delivery.controller import EdgeStatus, Outcome, SyncContext, newest
from edge_sync.delivery.edges import EdgeSpec, GitOpsSpec, KServeSpec, LocalSpec, load_fleet
from edge_sync.delivery.fleet import ControllerFleet
from edge_sync.delivery.metrics import SyncMetrics
from edge_sync.delivery.modelcars import Modelcars
from edge_sync.delivery.pull import DoorClient, Puller
from edge_sync.delivery.reporter import Reporter
from edge_sync.delivery.targets import Target
from edge_sync.delivery.targets.address import VersionedInferenceProbe
from edge_sync.delivery.targets.fleet_repo import Author, FleetRepo
from edge_sync.delivery.targets.gitops import GitOpsTarget
from edge_sync.delivery.targets.kserve import IN_CLUSTER, KServeTarget, api_client
from edge_sync.delivery.targets.local import LocalServerTarget
from edge_sync.delivery.waves import WaveRow, Waves, spans_waves
from foundation.credentials import check_strength
from foundation.errors import InvalidInput, NotFound
from foundation.layout import Layout
from foundation.modelcar import door_reference, door_registry
from foundation.settings import Settings
from foundation.storage.reader import BucketReader
from foundation.storage.store import ObjectStore
from foundation.tls import edge_context, require_https


def build_targets(settings: Settings, specs: Iterable[EdgeSpec]) -> dict[str, Target]:
    """One target per edge; one Kubernetes API client per kubeconfig context."""
    delivery = settings.delivery
    clients: dict[tuple[str | None, str], client.ApiClient] = {}
    store, layout = ObjectStore(settings.s3), Layout(settings.buckets)
    targets: dict[str, Target] = {}
    probe = VersionedInferenceProbe()
    for spec in specs:
        t = spec.target
        if isinstance(t, KServeSpec):
            key = (str(t.kubeconfig) if t.kubeconfig else None, t.context)
            if key not in clients:
                clients[key] = api_client(t.context, key[0], pool_size=max(16, delivery.workers))
            targets[spec.edge] = KServeTarget(
                clients[key],
                t.namespace,
                t.name,
                t.canary_percent,
                delivery.ready_timeout_s,
                t.context,
                probe if _confirms(t) else None,
            )
        elif isinstance(t, LocalSpec):
            targets[spec.edge] = LocalServerTarget(
                t.url,
                spec.edge,
                spec.model_name,
                t.probes,
                store,
                layout,
                delivery.ready_timeout_s,
                t.probe_accuracy,
            )
        elif isinstance(t, GitOpsSpec):
            targets[spec.edge] = _gitops_target(settings, spec.edge, t, clients, probe)
    return targets


def _gitops_target(
    settings: Settings,
    edge: str,
    spec: GitOpsSpec,
    clients: dict[tuple[str | None, str], client.ApiClient],
    probe: VersionedInferenceProbe,
) -> GitOpsTarget:
    """Commits through a clone of its own under the controller's work folder; health read as KServe's."""
    key = (str(spec.kubeconfig) if spec.kubeconfig else None, spec.context)
    if key not in clients:
        clients[key] = api_client(spec.context, key[0], pool_size=max(16, settings.delivery.workers))
    timeout = settings.delivery.ready_timeout_s
    reader = KServeTarget(clients[key], spec.namespace, spec.name, 0, timeout, spec.context)
    workdir = settings.state_dir / "edge-sync" / "gitops" / edge
    repo = FleetRepo(spec.repo, spec.branch, workdir, Author(spec.author_name, spec.author_email))
    confirms = spec.confirm_through_address
    confirms = spec.context == IN_CLUSTER if confirms is None else confirms
    return GitOpsTarget(repo, spec.folder(edge), reader, timeout, probe if confirms else None)


def _confirms(spec: KServeSpec) -> bool:
    """Whether a rollout is confirmed through the InferenceService's address (see ``KServeSpec``)."""
    return (
        spec.context == IN_CLUSTER if spec.confirm_through_address is None else spec.confirm_through_address
    )


def build_fleet(
    settings: Settings,
    specs: list[EdgeSpec],
    targets: dict[str, Target] | None = None,
    metrics: SyncMetrics | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> ControllerFleet:
    """A fleet over ``specs``: the shared reader and context, and a target per edge unless given."""
    workers = settings.delivery.workers
    pullers = build_pullers(settings, specs)  # first: a weak token stops us before any connection
    ctx = SyncContext(
        BucketReader.connect(settings.s3),
        Layout(settings.buckets),
        metrics or SyncMetrics(),
        settings.state_dir / "edge-sync",
        # the S3 connections are shared: many edges at once download their files one by one
        max(1, workers // min(workers, max(1, len(specs)))),
    )
    if settings.delivery.model_source == "oci":
        ctx = dataclasses.replace(ctx, modelcars=build_modelcars(settings, specs, pullers).locate)
    targets = targets if targets is not None else build_targets(settings, specs)
    whole = _whole_fleet(settings, specs)  # `--edge X` still waits for X's earlier waves
    waves = None
    if spans_waves(whole):  # the other edges' targets are read only to judge waves
        others = build_targets(settings, [s for s in whole if s.edge not in targets])
        waves = Waves(settings.delivery, whole, {**targets, **others}, lambda spec: newest(spec, ctx))
        ctx = dataclasses.replace(ctx, gate=waves.hold)
    return ControllerFleet(
        settings.delivery,
        settings.kafka,
        specs,
        targets,
        ctx,
        on_outcome,
        pullers,
        waves,
    )


def build_modelcars(settings: Settings, specs: list[EdgeSpec], pullers: dict[str, Puller]) -> Modelcars:
    """An edge site's modelcars at the front door (``delivery.model_source = "oci"``)."""
    registry = door_registry(settings, specs[0].edge) if pullers else None
    if registry is None:
        raise InvalidInput("modelcars come through the front door: set this edge's EDGECORE_DOOR_TOKEN")
    spec = specs[0]
    where = door_reference(settings, spec.edge, spec.model_name, "latest")
    return Modelcars(registry, where, settings.state_dir / "edge-sync" / "modelcars")


def _whole_fleet(settings: Settings, specs: list[EdgeSpec]) -> list[EdgeSpec]:
    """The fleet file's edges when ``specs`` are some of them (their waves depend on the others)."""
    path = settings.fleet_file
    if not path.is_file():
        return specs
    whole = load_fleet(path)
    chosen = {s.edge: s for s in specs}
    if not set(chosen) <= {s.edge for s in whole}:
        return specs
    return [chosen.get(s.edge, s) for s in whole]


def build_pullers(settings: Settings, specs: list[EdgeSpec]) -> dict[str, Puller]:
    """At an edge site (a front-door token is set): each edge pulls its model into its own storage.

    A site serves one store; a token is that store's, so a fleet with a token holds one edge.
    """
    token = settings.door.token.get_secret_value()
    if settings.kafka.security_protocol == "SASL_SSL":  # an edge site: it must pull, and log in to Kafka
        check_strength(token, "this edge's front-door token (EDGECORE_DOOR_TOKEN)")
        check_strength(settings.kafka.password.get_secret_value(), "this edge's Kafka password")
    if not token:
        return {}
    if len(specs) != 1:
        raise InvalidInput(f"a front-door token is one store's: this fleet holds {len(specs)} edges")
    check_strength(token, "this edge's front-door token (EDGECORE_DOOR_TOKEN)")
    edge = specs[0].edge
    http = httpx.Client(
        headers={"Authorization": f"Bearer {token}"},
        verify=edge_context(settings),
    )
    door = DoorClient(
        require_https(settings.door.url, "the core's front door (EDGECORE_DOOR_URL)"), edge, http
    )
    store = ObjectStore(settings.s3)
    store.ensure_bucket(Layout(settings.buckets).edge_bucket(edge))
    work = settings.state_dir / "edge-sync"  # the controller's work folder (build_fleet)
    # only a local server loads a folder, and not when it loads modelcars
    local = isinstance(specs[0].target, LocalSpec) and settings.delivery.model_source == "s3"
    keep = work if local else None
    return {edge: Puller(door, store, Layout(settings.buckets), work / "pull", keep=keep)}


def select(settings: Settings, edges: Iterable[str] = ()) -> list[EdgeSpec]:
    """The fleet file's edges, or only the named ones."""
    specs = load_fleet(settings.fleet_file)
    wanted = set(edges)
    if not wanted:
        return specs
    unknown = wanted - {s.edge for s in specs}
    if unknown:
        raise NotFound(f"edges {sorted(unknown)} are not in the fleet file {settings.fleet_file}")
    return [s for s in specs if s.edge in wanted]


def fleet_status(settings: Settings, specs: list[EdgeSpec]) -> tuple[list[EdgeStatus], list[WaveRow]]:
    """Each edge's row, and each release's waves where the fleet has more than one."""
    fleet = build_fleet(settings, specs)
    try:
        return fleet.statuses(), fleet.wave_report()
    finally:
        fleet.close()


def rollback(settings: Settings, specs: list[EdgeSpec]) -> list[EdgeStatus]:
    """``edgecore edges rollback``: put each edge back on its previous version."""
    fleet = build_fleet(settings, specs)
    try:
        fleet.rollback_all()
        return fleet.statuses()
    finally:
        fleet.close()


def unpin(settings: Settings, specs: list[EdgeSpec]) -> list[EdgeStatus]:
    """``edgecore edges unpin``: let rolled-back edges be synced again."""
    fleet = build_fleet(settings, specs)
    try:
        fleet.unpin_all()
        return fleet.statuses()
    finally:
        fleet.close()


def run_fleet(
    settings: Settings,
    specs: list[EdgeSpec],
    stop: threading.Event,
    once: bool = False,
    metrics_port: int | None = None,
    group_id: str = "fleet",
) -> list[Outcome]:
    """``edgecore edges run``: one pass (``once``), or events + polling until ``stop``."""
    fleet = build_fleet(settings, specs)
    if fleet.pullers:  # an edge's consumer groups are named after it (its Kafka ACLs)
        group_id = specs[0].edge
    if once:
        try:
            return fleet.reconcile_all()
        finally:
            fleet.close()
    if metrics_port:
        fleet.metrics.serve(metrics_port, settings.delivery.metrics_host)
    reporters = [
        threading.Thread(target=r.run, args=(stop,), name="edge-sync-report", daemon=True)
        for r in build_reporters(settings, fleet)
    ]
    for thread in reporters:
        thread.start()
    try:
        fleet.run(stop, group_id)
    finally:
        stop.set()
        for thread in reporters:
            thread.join(timeout=10)
    return list(fleet.outcomes.values())


def build_reporters(settings: Settings, fleet: ControllerFleet) -> list[Reporter]:
    """At an edge site, its report to the core (``edge_sync.delivery.reporter``); none elsewhere."""
    return [
        Reporter(
            puller.door,
            fleet.target(edge),
            fleet.spec(edge).model_name,
            settings.state_dir / "edge-sync" / f"report-{edge}.json",
            settings.delivery.report_s,
        )
        for edge, puller in fleet.pullers.items()
    ]
