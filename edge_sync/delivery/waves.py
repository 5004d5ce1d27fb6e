"""Rollout waves: a release reaches the fleet's first wave, bakes there, then goes on to the next.

KServe rolls out one InferenceService; nothing rolls a release across many.  Each edge's
fleet entry names its ``wave``: an edge takes a release only once every edge of an
earlier wave that received it serves it, confirmed, for ``bake_s``, and its predictor's
error and unsure rates stayed under their limits meanwhile.  A failure halts the
release: an edge that rolled it back (its own rollout, a rate over a limit, an operator)
puts the other edges of its wave that serve it back on their previous version (rejected
there, not pinned), and no edge takes it afterwards.

Every decision is read back from the targets and buckets (serving version, confirmation
time, rejected version), so a restarted controller resumes where the rollout stood; only
the counters' starting points live in memory, so after a restart the rates are watched
from then on.  A release is what edges share: the models of one training run carry its
run key (``release`` in the manifest's metadata); a version without one is a release of
its model alone, which edges serving a shared model have in common.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from edge_sync.delivery.edges import EdgeSpec
from edge_sync.delivery.targets import Target
from edge_sync.delivery.targets.base import TargetState
from edge_sync.delivery.targets.counters import Counters
from foundation.errors import EdgecoreError
from foundation.registry import StoredVersion
from foundation.settings import DeliverySettings

VIEW_S = 2.0
"""How long one read of the fleet answers every edge's "may I?" (a pass per edge would
otherwise read the whole fleet again)."""
WATCH_S = 5.0
"""How often baking waves are judged."""


def release_of(candidate: StoredVersion, model: str) -> str:
    release = candidate.manifest.metadata.get("release")
    return release if isinstance(release, str) and release else f"{model}@{candidate.version}"


@dataclass(frozen=True)
class Member:
    """One edge as one read of the fleet saw it."""

    spec: EdgeSpec
    target: Target
    candidate: StoredVersion | None
    state: TargetState | None
    error: str = ""
    """Why it could not be read now: it then holds every later wave."""

    @property
    def version(self) -> str:
        return self.candidate.version if self.candidate else ""

    @property
    def release(self) -> str | None:
        return release_of(self.candidate, self.spec.model_name) if self.candidate else None

    @property
    def serves(self) -> bool:
        """Serving the newest version it received, confirmed."""
        current = self.state.current if self.state else None
        return bool(
            self.candidate and current and current.version == self.candidate.version and current.synced_at
        )

    @property
    def rejected(self) -> bool:
        return bool(self.candidate and self.state and self.state.rejected == self.candidate.version)

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec.edge, self.candidate.version if self.candidate else "")


@dataclass(frozen=True)
class Review:
    roll_back: list[tuple[Member, str]] = field(default_factory=list)
    """Edges to put back on their previous version, and why."""
    wake: list[str] = field(default_factory=list)
    """Edges a held release may now reach."""


@dataclass(frozen=True)
class WaveRow:
    """One wave of one release, for ``edges status``."""

    release: str
    wave: int
    edges: int
    serving: int
    state: str


def spans_waves(specs: list[EdgeSpec]) -> bool:
    """Whether a fleet has more than one wave: only then is a release held for an earlier one."""
    return len({s.wave for s in specs}) > 1


class Waves:
    """Whether an edge may take a release now, and the watch over baking waves."""

    def __init__(
        self,
        rules: DeliverySettings,
        specs: list[EdgeSpec],
        targets: dict[str, Target],
        newest: Callable[[EdgeSpec], StoredVersion | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules
        self._specs = specs
        self._targets = targets
        self._newest = newest
        self._clock = clock
        self._view: tuple[float, list[Member]] | None = None
        self._starts: dict[tuple[str, str], Counters] = {}
        """Each (edge, version)'s counters when it began to serve, or when first watched."""
        self._seen: dict[tuple[str, str], Counters] = {}
        self._lock = threading.Lock()

    # -- reading the fleet -------------------------------------------------------------
    def view(self, fresh: bool = False) -> list[Member]:
        with self._lock:
            if not fresh and self._view and time.monotonic() - self._view[0] < VIEW_S:
                return self._view[1]
            with ThreadPoolExecutor(max_workers=8, thread_name_prefix="waves") as pool:
                members = list(pool.map(self._member, self._specs))
            self._view = (time.monotonic(), members)
            return members

    def changed(self) -> None:
        """This fleet moved an edge: the next question reads the fleet again."""
        with self._lock:
            self._view = None

    def _member(self, spec: EdgeSpec) -> Member:
        target = self._targets[spec.edge]
        try:
            return Member(spec, target, self._newest(spec), target.state())
        except EdgecoreError as exc:
            return Member(spec, target, None, None, f"cannot read {spec.edge} now ({type(exc).__name__})")

    # -- the gate ----------------------------------------------------------------------
    def hold(self, spec: EdgeSpec, candidate: StoredVersion) -> str | None:
        """Why ``spec``'s edge may not take ``candidate`` yet; None when it may."""
        release = release_of(candidate, spec.model_name)
        view = self.view()
        members = [m for m in view if m.release == release]
        failed = [m for m in members if m.rejected]
        if failed:
            return f"release {release} halted: {failed[0].spec.edge} rolled it back"
        unread = [m for m in view if m.error and m.spec.wave < spec.wave]
        if unread:  # it may hold the release, or have rejected it
            return f"wave {spec.wave} waits: {unread[0].error}"
        for m in sorted(members, key=lambda m: (m.spec.wave, m.spec.edge)):
            if m.spec.wave >= spec.wave:
                break
            if m.state is not None and m.state.pinned:  # an operator holds it where it is
                continue
            why = self._pending(m)
            if why:
                return f"wave {spec.wave} waits for wave {m.spec.wave}: {why}"
        return None

    def _pending(self, m: Member) -> str | None:
        edge = m.spec.edge
        if not m.serves or m.state is None or m.state.current is None or m.candidate is None:
            return f"{edge} does not serve {m.candidate.version if m.candidate else 'it'} yet"
        synced = m.state.current.synced_at
        left = self.rules.wave_bake_s - (self._clock() - synced.timestamp()) if synced else 0.0
        if left > 0:
            return f"{edge} bakes {left:.0f} s more"
        need = self.rules.wave_min_predictions
        seen = self._seen.get(m.key) or (self._observe(m) if need else None)
        if seen is not None and seen.predictions < need:  # unreadable counters: judged on time alone
            return f"{edge} answered {seen.predictions:.0f} of {need} predictions"
        return None

    # -- the watch ---------------------------------------------------------------------
    def started(self, edge: str, target: Target, version: str) -> None:
        """``edge`` began to serve ``version``: its rates are counted from here (without this, from
        the predictor's start, which for a RawDeployment's new pods is the same)."""
        try:
            counters = target.counters()
        except EdgecoreError:
            return
        if counters is not None:
            self._starts[(edge, version)] = counters

    def review(self) -> Review:
        """Judge every baking edge; halted releases' waves go back; held edges a release may reach wake."""
        members = self.view(fresh=True)
        releases: dict[str, list[Member]] = {}
        for m in members:
            if m.release is not None:
                releases.setdefault(m.release, []).append(m)
        roll_back: list[tuple[Member, str]] = []
        for group in releases.values():
            why, wave = self._failure(group)
            if why:  # its wave goes back (a later one cannot have it); an edge's first version cannot
                back = [m for m in group if m.serves and m.spec.wave >= wave]
                roll_back += [(m, why) for m in back if m.state and m.state.previous is not None]
        wake = [
            m.spec.edge
            for m in members
            if m.candidate and not m.serves and not m.rejected and self.hold(m.spec, m.candidate) is None
        ]
        return Review(roll_back, wake)

    def _failure(self, group: list[Member]) -> tuple[str | None, int]:
        """Why a release failed, and in which wave: a rollback, or rates over a limit while baking."""
        failed = [m for m in group if m.rejected]
        if failed:
            first = min(failed, key=lambda m: m.spec.wave)
            return f"{first.spec.edge} rolled {first.release} back", first.spec.wave
        for m in sorted(group, key=lambda m: m.spec.wave):
            if m.serves and self._baking(m):
                why = self._judge(m)
                if why:
                    return f"{m.spec.edge}: {why}", m.spec.wave
        return None, 0

    def _baking(self, m: Member) -> bool:
        current = m.state.current if m.state else None
        if current is None or current.synced_at is None:
            return False
        seen = self._seen.get(m.key)
        need = self.rules.wave_min_predictions
        short = bool(need) and (seen is None or seen.predictions < need)
        return short or self._clock() - current.synced_at.timestamp() < self.rules.wave_bake_s

    def _observe(self, m: Member) -> Counters | None:
        """What ``m`` answered since it began to serve its version; None where unreadable."""
        try:
            now = m.target.counters()
        except EdgecoreError:
            return None
        if now is None:
            return None
        seen = now.since(self._starts.get(m.key, Counters()))
        self._seen[m.key] = seen
        return seen

    def _judge(self, m: Member) -> str | None:
        seen = self._observe(m)
        if seen is None:
            return None
        if seen.requests < max(1, self.rules.wave_min_predictions):
            return None
        if seen.error_rate() > self.rules.wave_max_error_rate:
            return f"error rate {seen.error_rate():.1%} over {self.rules.wave_max_error_rate:.1%}"
        if seen.unsure_rate() > self.rules.wave_max_unsure_rate:
            return f"unsure rate {seen.unsure_rate():.1%} over {self.rules.wave_max_unsure_rate:.1%}"
        return None

    # -- what edges status shows -------------------------------------------------------
    def report(self) -> list[WaveRow]:
        rows: list[WaveRow] = []
        members = self.view()
        for release in sorted({m.release for m in members if m.release}):
            group = [m for m in members if m.release == release]
            halted = any(m.rejected for m in group)
            for wave in sorted({m.spec.wave for m in group}):
                edges = [m for m in group if m.spec.wave == wave]
                serving = sum(m.serves for m in edges)
                rows.append(WaveRow(release, wave, len(edges), serving, self._wave_state(edges, halted)))
        return rows

    def _wave_state(self, edges: list[Member], halted: bool) -> str:
        if any(m.rejected for m in edges):
            return "rolled back"
        if halted:
            return "halted"
        serving = sum(m.serves for m in edges)
        if serving == len(edges):
            return "baking" if any(self._pending(m) for m in edges) else "done"
        return "rolling out" if serving else "waiting"
