"""The edge sync handlers: plain functions with explicit arguments.

``reconcile`` is the whole decision, and it is idempotent: it reads the newest gated
version from the edge bucket and the serving state back from the target, and acts only
when they differ.  So a repeated event, a poll, a restart and a resumed half-done
rollout all go through the same code and never roll out the same version twice.

    newest gated version ──► verify every file (sha256, size) ──► target.apply
        (refused: old version keeps serving)        (not healthy: previous restored)
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from edge_sync.delivery.edges import EdgeSpec
from edge_sync.delivery.metrics import SyncMetrics
from edge_sync.delivery.targets import Deployed, Target
from foundation.assortment import read_catalogue
from foundation.errors import EdgecoreError, IntegrityError, RolloutFailed
from foundation.events import ModelPublished
from foundation.layout import Layout, parse_version
from foundation.registry import Fetched, StoredVersion, fetch_verified, newest_version, verify_remote
from foundation.storage.objects import ObjectReader

log = logging.getLogger(__name__)

Action = Literal[
    "nothing-published",
    "up-to-date",
    "ahead",
    "skipped-rejected",
    "pinned",
    "held",
    "refused",
    "failed",
    "rolled-out",
    "rolled-back",
]


@dataclass(frozen=True)
class SyncContext:
    """What every handler needs besides the edge and its target."""

    reads: ObjectReader
    """What listing and verifying read through (the signed wire reader in a fleet)."""
    layout: Layout
    metrics: SyncMetrics
    workdir: Path
    """Verified local copies: <workdir>/<edge>/<model>/<version>/."""
    workers: int = 8
    gate: Callable[[EdgeSpec, StoredVersion], str | None] | None = None
    """Why an edge may not take a version yet (its rollout wave waits), or None; see ``waves``."""
    modelcars: Callable[[EdgeSpec, StoredVersion], str | None] | None = None
    """Where targets load versions from as modelcars (``delivery.model_source = "oci"``): the version's
    image checked against its manifest, and the ``oci://…@sha256:…`` reference pinning it (None: the
    version has no modelcar, published before the core pushed them, and is loaded from the bucket);
    see ``edge_sync.delivery.modelcars``."""


@dataclass(frozen=True)
class Outcome:
    edge: str
    action: Action
    version: str | None = None
    serving: str | None = None
    detail: str = ""
    download_mb_per_s: float | None = None


def reconcile(spec: EdgeSpec, target: Target, ctx: SyncContext) -> Outcome:
    """Bring ``target`` to the newest gated version of the edge's model, or leave it be."""
    try:
        candidate = newest(spec, ctx)
    except IntegrityError as exc:
        return _refused(spec, target, ctx, None, str(exc))
    return _sync(spec, target, ctx, candidate)


def _sync(spec: EdgeSpec, target: Target, ctx: SyncContext, candidate: StoredVersion | None) -> Outcome:
    started = time.monotonic()
    edge, model = spec.edge, spec.model_name
    state = target.state()  # one read of the target for all three decisions below
    current = state.current
    serving = current.version if current else None
    ctx.metrics.pinned.labels(edge).set(1 if state.pinned else 0)
    if state.pinned:  # an operator's rollback is a state, not lag: nothing is behind on purpose
        ctx.metrics.lag.labels(edge).set(0)
        ctx.metrics.versions_behind.labels(edge).set(0)
        return Outcome(
            edge, "pinned", candidate.version if candidate else None, serving, "rolled back by an operator"
        )
    if candidate is None:
        ctx.metrics.lag.labels(edge).set(0)
        return Outcome(edge, "nothing-published", serving=serving)
    _observe_lag(spec, ctx, candidate, current)
    if current and current.version == candidate.version and current.synced_at is not None:
        return Outcome(edge, "up-to-date", candidate.version, serving)
    if current and parse_version(current.version) > parse_version(candidate.version):
        return Outcome(
            edge, "ahead", candidate.version, serving, "the edge serves a newer version than its bucket"
        )
    # A rejected first version stays named by the target (nothing older to go back to) but
    # unconfirmed; it is not retried either.  A confirmed one returned "up-to-date" above.
    if state.rejected == candidate.version:
        return Outcome(
            edge, "skipped-rejected", candidate.version, serving, "rolled back before; not retried"
        )
    held = ctx.gate(spec, candidate) if ctx.gate else None
    if held:
        return Outcome(edge, "held", candidate.version, serving, held)
    checked = _checked(spec, target, ctx, candidate)
    if isinstance(checked, Outcome):
        return checked
    fetched, uri = checked
    ctx.metrics.download_bytes.labels(edge).inc(candidate.size)
    try:
        deployed = target.apply(uri, candidate.version)
    except RolloutFailed as exc:
        ctx.metrics.failures.labels(edge, "rollout").inc()
        ctx.metrics.rollbacks.labels(edge).inc()
        log.error("edge %s: %s", edge, exc)
        after = target.current()
        return Outcome(edge, "rolled-back", candidate.version, after.version if after else None, str(exc))
    ctx.metrics.rollouts.labels(edge).inc()
    ctx.metrics.lag.labels(edge).set(0)
    ctx.metrics.versions_behind.labels(edge).set(0)
    ctx.metrics.last_sync.labels(edge).set(time.time())
    ctx.metrics.duration.observe(time.monotonic() - started)
    if target.local_copy:
        _prune(ctx.workdir / edge / model, keep={deployed.version, current.version if current else ""})
    log.info("edge %s: serving %s on %s (was %s)", edge, deployed.version, target.description, serving)
    return Outcome(
        edge, "rolled-out", candidate.version, deployed.version, download_mb_per_s=fetched.mb_per_s
    )


def _checked(
    spec: EdgeSpec, target: Target, ctx: SyncContext, candidate: StoredVersion
) -> tuple[Fetched, str] | Outcome:
    """The candidate verified (copied, where the target loads a local folder) and the URI the target
    loads it from, or the refusal of it: a version that does not know a product the edge sells, or
    whose files (or modelcar) fail their manifest."""
    edge = spec.edge
    catalogue = read_catalogue(ctx.reads, ctx.layout.edge_catalogue_home(edge))
    unknown = sorted(set(catalogue.skus) - set(candidate.manifest.labels)) if catalogue else []
    if unknown:
        why = f"{candidate.version} does not know {unknown}, which edge {edge} sells"
        return _refused(spec, target, ctx, candidate, why)
    try:
        started = time.monotonic()
        located = ctx.modelcars(spec, candidate) if ctx.modelcars is not None else None
        if located is not None:
            return Fetched(candidate, None, time.monotonic() - started), located
        if target.local_copy:
            folder = ctx.workdir / edge / spec.model_name / candidate.version
            fetched = fetch_verified(ctx.reads, candidate, folder, ctx.workers)
            return fetched, folder.resolve().as_uri()
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        return verify_remote(ctx.reads, candidate, ctx.workdir, ctx.workers), candidate.uri
    except IntegrityError as exc:
        return _refused(spec, target, ctx, candidate, str(exc))


def on_model_published(
    event: ModelPublished, spec: EdgeSpec, target: Target, ctx: SyncContext
) -> Outcome | None:
    """A ``model-published`` event is a trigger, not an order: the edge bucket decides what is newest
    (the fleet pulls from the front door first).

    Events for other models or edges are ignored (None).  The event's file digests must
    agree with the delivered manifest, otherwise the version is refused.
    """
    if event.model != spec.model_name or spec.edge not in event.edges:
        return None
    try:
        candidate = newest(spec, ctx)
    except IntegrityError as exc:
        return _refused(spec, target, ctx, None, str(exc))
    if candidate is not None and candidate.version == event.version:
        listed = candidate.manifest.files
        clash = sorted(n for n, sha in event.files.items() if n in listed and listed[n].sha256 != sha)
        if clash:
            return _refused(
                spec, target, ctx, candidate, f"event and manifest disagree on the sha256 of {clash}"
            )
    return _sync(spec, target, ctx, candidate)


def newest(spec: EdgeSpec, ctx: SyncContext) -> StoredVersion | None:
    """The newest complete version in the edge's bucket."""
    return newest_version(ctx.reads, ctx.layout.edge_models_prefix(spec.edge, spec.model_name))


def _refused(
    spec: EdgeSpec, target: Target, ctx: SyncContext, candidate: StoredVersion | None, why: str
) -> Outcome:
    ctx.metrics.failures.labels(spec.edge, "integrity").inc()
    current = target.current()
    log.error("edge %s: refused %s: %s", spec.edge, candidate.version if candidate else "newest version", why)
    return Outcome(
        spec.edge,
        "refused",
        candidate.version if candidate else None,
        current.version if current else None,
        why,
    )


def _observe_lag(
    spec: EdgeSpec, ctx: SyncContext, candidate: StoredVersion, current: Deployed | None
) -> None:
    if current is not None and current.version == candidate.version:
        ctx.metrics.lag.labels(spec.edge).set(0)
        ctx.metrics.versions_behind.labels(spec.edge).set(0)
        return
    published = candidate.manifest.created
    ctx.metrics.lag.labels(spec.edge).set(max(0.0, (datetime.now(UTC) - published).total_seconds()))
    serving = parse_version(current.version) if current else 0
    newer = [v for v in candidate.listed if parse_version(v) > serving]
    ctx.metrics.versions_behind.labels(spec.edge).set(len(newer))


def _prune(folder: Path, keep: set[str]) -> None:
    """Local copies other than the serving and the previous version are not needed again."""
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.is_dir() and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)


@dataclass(frozen=True)
class EdgeStatus:
    edge: str
    target: str
    serving: str | None
    previous: str | None
    newest: str | None
    last_sync: datetime | None
    lag_s: float | None
    """Seconds the newest gated version has waited to be served; 0 when it is served or pinned."""
    error: str = ""
    pinned: bool = False
    wave: int = 0
    held: str = ""
    """Why the newest version waits (its rollout wave), or empty."""


def status(spec: EdgeSpec, target: Target, ctx: SyncContext) -> EdgeStatus:
    """What ``edgecore edges status`` shows for one edge, all read back from bucket and target."""
    try:
        state = target.state()
        current, previous = state.current, state.previous
        candidate = newest(spec, ctx)
    except EdgecoreError as exc:
        return EdgeStatus(spec.edge, target.description, None, None, None, None, None, str(exc))
    lag: float | None = None
    held = ""
    if state.pinned:
        lag = 0.0
    elif candidate is not None:
        served = current is not None and current.synced_at is not None
        served = served and current is not None and current.version == candidate.version
        lag = 0.0 if served else max(0.0, (datetime.now(UTC) - candidate.manifest.created).total_seconds())
        held = (ctx.gate(spec, candidate) or "") if ctx.gate and not served else ""
    return EdgeStatus(
        spec.edge,
        target.description,
        current.version if current else None,
        previous.version if previous else None,
        candidate.version if candidate else None,
        current.synced_at if current else None,
        lag,
        pinned=state.pinned,
        wave=spec.wave,
        held=held,
    )
