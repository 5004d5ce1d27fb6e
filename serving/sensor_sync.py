"""The sensor model's delivery at the edge: the gateway's monitor follows the newest version.

The product model is served by a model server that the sync controller drives; the
sensor model is scored inside the gateway, beside the MQTT intake, so the gateway keeps
it current itself, by the same rules.  The newest complete version under the edge
bucket's ``models/<edge>-sensors/`` (pulled there from the front door by the site's sync
controller, or published there at a single site) is copied and verified file by file,
loaded and probed, and only then replaces the version that scores readings.  A version
that fails is recorded as rejected and not tried again, while the one before keeps
scoring.  What serves is written to the model's pointer in the edge bucket
(``foundation.pointer``), the state a restarted gateway reads back to load it again, and
the one an operator's rollback (:func:`roll_back`) changes: the gateway follows the pointer.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from foundation.errors import EdgecoreError, IntegrityError, InvalidInput, NotFound
from foundation.layout import Layout, parse_version, sensor_model_name
from foundation.pointer import ModelPointer
from foundation.registry import (
    StoredVersion,
    fetch_verified,
    newest_version,
    read_pointer,
    read_version,
    write_pointer,
)
from foundation.storage.store import ObjectStore
from serving.metrics import SensorMetrics
from serving.sensor_monitor import SensorMonitor

log = logging.getLogger(__name__)


class SensorSlot:
    """What the MQTT intake hands readings to: the monitor of the version loaded, if any yet."""

    def __init__(self, metrics: SensorMetrics) -> None:
        self.metrics = metrics
        self.monitor: SensorMonitor | None = None
        self.version: str | None = None

    def take(self, device: str, machine: str, payload: bytes) -> dict[str, Any]:
        monitor = self.monitor  # one read: a swap in between changes the next message's monitor
        if monitor is None:
            reason = "no sensor model has been delivered to this edge yet"
            return {"status": 503, "device": device, "machine": machine, "reason": reason}
        return monitor.take(device, machine, payload)

    def swap(self, monitor: SensorMonitor, version: str) -> None:
        """From the next message on, ``monitor`` scores; windows start afresh, in its shape, and
        the alarms that stand stay raised until it sees their machine run normally."""
        before = self.monitor
        if before is not None:
            monitor.alarms.adopt(before.alarms.raised())
        self.version = version
        self.monitor = monitor


class SensorModelSync:
    """Keeps ``slot`` on the newest version of the edge's sensor model; idempotent, like a reconcile."""

    def __init__(
        self,
        edge: str,
        store: ObjectStore,
        layout: Layout,
        workdir: Path,
        slot: SensorSlot,
        build: Callable[[Path], SensorMonitor],
    ) -> None:
        self.edge = edge
        self.model = sensor_model_name(edge)
        self.store = store
        self.layout = layout
        self.workdir = workdir
        self.slot = slot
        self.build = build
        self._refused: set[str] = set()
        """Versions refused since this process started (a first version has no pointer to hold it)."""

    def reconcile(self) -> str:
        """What it did: rolled-out, up-to-date, nothing-published, pinned, skipped-rejected or refused."""
        pointer = read_pointer(self.store, self.layout, self.edge, self.model)
        loaded = self.slot.version
        if pointer is not None and (loaded is None or (pointer.pinned and pointer.version != loaded)):
            self._load_served(pointer)  # after a restart, or an operator's rollback
        if pointer is not None and pointer.pinned:
            return "pinned"
        candidate = newest_version(self.store, self.layout.edge_models_prefix(self.edge, self.model))
        serving = self.slot.version
        if candidate is None:
            return "nothing-published"
        if serving is not None and parse_version(serving) >= parse_version(candidate.version):
            return "up-to-date"
        rejected = {pointer.rejected_version} if pointer is not None else set()
        if candidate.version in rejected | self._refused:
            return "skipped-rejected"
        try:
            monitor = self._verified(candidate)
        except (EdgecoreError, ValueError, RuntimeError) as exc:
            if isinstance(exc, EdgecoreError) and exc.retryable:
                raise  # storage away for a moment: the next round tries again; the version is not at fault
            log.error("edge %s: sensor model %s refused: %s", self.edge, candidate.version, exc)
            self._refused.add(candidate.version)
            if pointer is not None:  # with nothing served before, there is no pointer to record it in
                self._write(pointer.model_copy(update={"rejected_version": candidate.version}))
            return "refused"
        self.slot.swap(monitor, candidate.version)
        self._prune(keep={candidate.version, serving or ""})
        now = read_pointer(self.store, self.layout, self.edge, self.model)
        if now is not None and now.pinned:  # an operator rolled back meanwhile: the next round follows
            return "pinned"
        self._write(
            ModelPointer(
                model=self.model,
                version=candidate.version,
                uri=candidate.uri,
                previous_version=pointer.version if pointer else None,
                previous_uri=pointer.uri if pointer else None,
                rejected_version=pointer.rejected_version if pointer else None,
                synced_at=datetime.now(UTC),
            )
        )
        log.info("edge %s: sensor model %s scores readings (was %s)", self.edge, candidate.version, serving)
        return "rolled-out"

    def run(self, stop: threading.Event, interval_s: float) -> None:
        """Reconcile every ``interval_s`` until ``stop``; a failed round is logged, the next tried."""
        while not stop.is_set():
            try:
                self.reconcile()
            except Exception:  # storage away, a broken pointer: the loaded version keeps scoring
                log.exception("edge %s: sensor model sync failed; again in %.0f s", self.edge, interval_s)
            stop.wait(interval_s)

    def _load_served(self, pointer: ModelPointer) -> None:
        """After a restart or a rollback: the version the pointer names scores (if it still verifies)."""
        if pointer.version in self._refused:
            return
        prefix = self.layout.edge_model_prefix(self.edge, self.model, pointer.version)
        try:
            self.slot.swap(self._verified(read_version(self.store, prefix)), pointer.version)
            log.info("edge %s: sensor model %s scores readings again", self.edge, pointer.version)
        except (EdgecoreError, ValueError, RuntimeError) as exc:
            if isinstance(exc, EdgecoreError) and exc.retryable:
                raise
            self._refused.add(pointer.version)
            log.error(
                "edge %s: the sensor model that served, %s, no longer loads: %s",
                self.edge,
                pointer.version,
                exc,
            )

    def _verified(self, stored: StoredVersion) -> SensorMonitor:
        """The version copied and checked file by file, loaded, and answering: a finite error for a
        window of typical readings (the training means), so a model that loads but computes garbage
        never replaces one that works."""
        fetched = fetch_verified(self.store, stored, self.workdir / self.model / stored.version)
        if fetched.path is None:
            raise IntegrityError(f"{stored.version} has no files to load")
        monitor = self.build(fetched.path)
        spec = monitor.scorer.spec
        typical = np.tile(np.asarray(spec.normalisation.mean, np.float32), (1, spec.window, 1))
        error = monitor.scorer.errors(typical)
        if not np.isfinite(error).all():
            raise IntegrityError(f"{stored.version} answers a non-finite error for typical readings")
        return monitor

    def _prune(self, keep: set[str]) -> None:
        """Local copies other than the loaded version and the one before it are not needed again."""
        folder = self.workdir / self.model
        for child in folder.iterdir() if folder.is_dir() else []:
            if child.is_dir() and child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)

    def _write(self, pointer: ModelPointer) -> None:
        write_pointer(self.store, self.layout, self.edge, pointer)


def roll_back(store: ObjectStore, layout: Layout, edge: str) -> ModelPointer:
    """``edgecore sensors rollback``: the edge's gateway back on the version before, pinned there.

    The version it leaves is named rejected, so it is never taken up again; a newer one is,
    once :func:`unpin` lets the gateway follow new versions again.
    """
    model = sensor_model_name(edge)
    pointer = read_pointer(store, layout, edge, model)
    if pointer is None or pointer.previous_version is None or pointer.previous_uri is None:
        raise InvalidInput(
            f"edge {edge}: its sensor model has no version before the one it scores to go back to"
        )
    try:
        read_version(store, layout.edge_model_prefix(edge, model, pointer.previous_version))
    except NotFound:
        raise InvalidInput(
            f"edge {edge}: {pointer.previous_version} is no longer in the store's bucket"
        ) from None
    back = pointer.model_copy(
        update={
            "version": pointer.previous_version,
            "uri": pointer.previous_uri,
            "previous_version": None,
            "previous_uri": None,
            "rejected_version": pointer.version,
            "pinned": True,
            "synced_at": datetime.now(UTC),
        }
    )
    write_pointer(store, layout, edge, back)
    return back


def unpin(store: ObjectStore, layout: Layout, edge: str) -> ModelPointer:
    """``edgecore sensors unpin``: the gateway follows new versions of the edge's sensor model again."""
    pointer = read_pointer(store, layout, edge, sensor_model_name(edge))
    if pointer is None:
        raise InvalidInput(f"edge {edge}: its gateway has never scored with a sensor model")
    free = pointer.model_copy(update={"pinned": False})
    write_pointer(store, layout, edge, free)
    return free
