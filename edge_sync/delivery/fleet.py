"""A fleet of controllers: one per edge, sharing a worker pool, the triggers and the metrics.

Composed by ``edge_sync.delivery.service.build_fleet``.  Every edge gets a controller
(its spec, its target, the shared handlers); a fleet runs them on one worker pool.
Triggers for one edge coalesce: while its pass waits for a worker, new events and polls
simply join it; while it runs, they mark it to run once more.  So an edge is never
reconciled by two threads at once, and a burst of events costs one extra pass at most.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from edge_sync.delivery.controller import (
    EdgeStatus,
    Outcome,
    SyncContext,
    on_model_published,
    reconcile,
    status,
)
from edge_sync.delivery.edges import EdgeSpec
from edge_sync.delivery.pull import Puller
from edge_sync.delivery.sources import consume_model_published, consumer_group, long_poll, poll_bucket
from edge_sync.delivery.targets import Target
from edge_sync.delivery.waves import WATCH_S, WaveRow, Waves
from foundation.errors import EdgecoreError
from foundation.events import ModelPublished
from foundation.layout import sensor_model_name
from foundation.settings import DeliverySettings, KafkaSettings

log = logging.getLogger(__name__)

RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0


@dataclass
class _Slot:
    spec: EdgeSpec
    target: Target
    queued: bool = False
    """A pass is waiting for a worker: it will see whatever a new trigger would."""
    running: bool = False
    again: bool = False
    event: ModelPublished | None = None
    failures: int = 0
    """Retryable failures in a row; the next pass is due after a backoff, not the next poll."""
    back: tuple[str, str] | None = None
    """(version, why): the edge's rollout wave halted; its next pass puts it back if it still serves it."""
    lock: threading.Lock = field(default_factory=threading.Lock)


class ControllerFleet:
    """The controllers of several edges, sharing a worker pool, sources and metrics."""

    def __init__(
        self,
        delivery: DeliverySettings,
        kafka: KafkaSettings,
        specs: list[EdgeSpec],
        targets: dict[str, Target],
        ctx: SyncContext,
        on_outcome: Callable[[Outcome], None] | None = None,
        pullers: dict[str, Puller] | None = None,
        waves: Waves | None = None,
    ) -> None:
        """``pullers``: at an edge site, how each edge pulls its model through the front door first.
        ``waves``: where the fleet's edges take releases wave after wave (``ctx.gate`` asks it)."""
        self.delivery = delivery
        self.waves = waves
        self.kafka = kafka
        self.ctx = ctx
        self.pullers = pullers or {}
        self.metrics = ctx.metrics
        self._slots = {s.edge: _Slot(s, targets[s.edge]) for s in specs}
        self._by_model: dict[str, list[_Slot]] = {}
        for slot in self._slots.values():
            self._by_model.setdefault(slot.spec.model_name, []).append(slot)
            if self.pullers:  # a new sensor model is pulled for the gateway (``_pull``)
                self._by_model.setdefault(sensor_model_name(slot.spec.edge), []).append(slot)
        self._pool = ThreadPoolExecutor(max_workers=max(1, delivery.workers), thread_name_prefix="edge-sync")
        self._on_outcome = on_outcome
        self._closed = threading.Event()
        self.outcomes: dict[str, Outcome] = {}

    # -- triggers ----------------------------------------------------------------------
    def on_event(self, event: ModelPublished) -> None:
        for slot in self._by_model.get(event.model, []):
            if slot.spec.edge in event.edges:
                self._schedule(slot, event)

    def target(self, edge: str) -> Target:
        return self._slots[edge].target

    def spec(self, edge: str) -> EdgeSpec:
        return self._slots[edge].spec

    def idle(self) -> bool:
        """No pass is queued or running (a retry waiting for its backoff does not count)."""
        return not any(slot.queued or slot.running for slot in self._slots.values())

    def statuses(self) -> list[EdgeStatus]:
        return list(self._pool.map(lambda s: status(s.spec, s.target, self.ctx), self._slots.values()))

    def rollback_all(self) -> None:
        list(self._pool.map(lambda s: s.target.rollback(), self._slots.values()))

    def unpin_all(self) -> None:
        list(self._pool.map(lambda s: s.target.unpin(), self._slots.values()))

    def wave_report(self) -> list[WaveRow]:
        return self.waves.report() if self.waves is not None else []

    def supervise(self, stop: threading.Event) -> None:
        """Watch baking waves: a halted release's wave goes back, a wave that baked lets the next one go.

        Both act through the edges' own passes, so nothing races a rollout in progress."""
        assert self.waves is not None
        while not stop.wait(WATCH_S) and not self._closed.is_set():
            try:
                review = self.waves.review()
            except Exception:  # the watch must outlive a bad read; the next one tries again
                log.exception("rollout waves: review failed")
                continue
            with contextlib.suppress(RuntimeError):  # the pool shut down meanwhile
                for member, why in review.roll_back:
                    slot = self._slots[member.spec.edge]
                    with slot.lock:
                        slot.back = (member.version, why)
                    self._schedule(slot, None)
                for edge in review.wake:
                    held = self.outcomes.get(edge)
                    if held is not None and held.action == "held":
                        self._schedule(self._slots[edge], None)

    def _wave_back(self, slot: _Slot, version: str, why: str) -> Outcome:
        """Put the edge back on its previous version if it still serves ``version`` (rejected, not pinned)."""
        edge = slot.spec.edge
        current = slot.target.current()
        if current is None or current.version != version:
            return Outcome(edge, "up-to-date", version, current.version if current else None, "moved on")
        log.error("edge %s: its rollout wave halted, back from %s: %s", edge, version, why)
        after = slot.target.rollback(f"its rollout wave halted: {why}", pin=False)
        self.metrics.rollbacks.labels(edge).inc()
        return Outcome(edge, "rolled-back", version, after.version if after else None, why)

    def schedule_all(self) -> None:
        for slot in self._slots.values():
            self._schedule(slot, None)

    def reconcile_all(self) -> list[Outcome]:
        """One synchronous pass over every edge (``edges run --once``, startup)."""
        return list(self._pool.map(lambda s: self._reconcile(s, None), self._slots.values()))

    def _schedule(self, slot: _Slot, event: ModelPublished | None) -> None:
        with slot.lock:
            if event is not None:
                slot.event = event
            if slot.queued:
                return
            if slot.running:
                slot.again = True
                return
            slot.queued = True
        self._pool.submit(self._drain, slot)

    def _drain(self, slot: _Slot) -> None:
        while True:
            with slot.lock:
                slot.queued, slot.running = False, True
                event, slot.event, slot.again = slot.event, None, False
            try:
                if self._reconcile(slot, event).action == "failed" and slot.failures:
                    self._retry_later(slot)
            except Exception:  # never leave the edge marked running: it would not be synced again
                log.exception("edge %s: sync crashed; retrying", slot.spec.edge)
                with slot.lock:
                    slot.running, slot.failures = False, slot.failures + 1
                self._retry_later(slot)
                return
            with slot.lock:
                if not slot.again:
                    slot.running = False
                    return

    def _retry_later(self, slot: _Slot) -> None:
        """S3, the API server or the network failed for a moment: try again soon, backing off."""
        delay = min(RETRY_FIRST_S * 2 ** (slot.failures - 1), RETRY_MAX_S, self.delivery.poll_s)
        timer = threading.Timer(delay, self._retry, (slot,))
        timer.daemon = True
        timer.start()

    def _retry(self, slot: _Slot) -> None:
        # RuntimeError: the pool shut down in between, nothing is left to retry for
        with contextlib.suppress(RuntimeError):
            if not self._closed.is_set():
                self._schedule(slot, None)

    def _topics(self) -> list[str]:
        """An edge reads its own topic (its Kafka login may read nothing else); the core, the shared one."""
        if self.kafka.security_protocol == "SASL_SSL":
            return [self.kafka.edge_topic(edge) for edge in self._slots]
        return [self.kafka.topic_model_published]

    def _on_pulled(self, edge: str) -> Callable[[], None]:
        return lambda: self._schedule(self._slots[edge], None)

    def _pull(self, slot: _Slot, event: ModelPublished | None) -> None:
        """Bring the newest versions into the edge bucket; without the core, reconcile what is there.

        The edge's sensor model comes along: the gateway's sensor monitor loads it from the
        edge bucket (``serving.sensor_sync``), and only this process talks to the front door.
        """
        puller = self.pullers.get(slot.spec.edge)
        if puller is None:
            return
        for model in dict.fromkeys((slot.spec.model_name, sensor_model_name(slot.spec.edge))):
            named = event is not None and event.model == model
            try:  # each model on its own: one failing does not keep the other from the edge
                puller.pull(
                    model,
                    expect=event.version if named and event else None,
                    keep=model == slot.spec.model_name,
                )
            except EdgecoreError as exc:
                reason = "unavailable" if exc.retryable else "pull"
                self.metrics.failures.labels(slot.spec.edge, reason).inc()
                log.error("edge %s: pulling %s from the front door failed: %s", slot.spec.edge, model, exc)
            except (OSError, httpx.HTTPError) as exc:  # a full disk, a broken answer: reconcile what is here
                self.metrics.failures.labels(slot.spec.edge, "pull").inc()
                log.error("edge %s: pulling %s from the front door failed: %s", slot.spec.edge, model, exc)

    def _reconcile(self, slot: _Slot, event: ModelPublished | None) -> Outcome:
        with slot.lock:
            back, slot.back = slot.back, None
        if back is None:
            self._pull(slot, event)
        try:
            if back is not None:
                outcome = self._wave_back(slot, *back)
            else:
                published = on_model_published(event, slot.spec, slot.target, self.ctx) if event else None
                outcome = published or reconcile(slot.spec, slot.target, self.ctx)
        except EdgecoreError as exc:
            slot.failures = slot.failures + 1 if exc.retryable else 0
            reason = "unavailable" if exc.retryable else "error"
            self.metrics.failures.labels(slot.spec.edge, reason).inc()
            log.error("edge %s: sync failed (%s): %s", slot.spec.edge, reason, exc)
            outcome = Outcome(slot.spec.edge, "failed", detail=f"{type(exc).__name__}: {exc}")
        else:
            slot.failures = 0
        if self.waves is not None and outcome.action in ("rolled-out", "rolled-back"):
            self.waves.changed()
            if outcome.action == "rolled-out" and outcome.version:
                self.waves.started(slot.spec.edge, slot.target, outcome.version)
        self.outcomes[slot.spec.edge] = outcome
        if self._on_outcome is not None:
            self._on_outcome(outcome)
        return outcome

    # -- running -----------------------------------------------------------------------
    def run(self, stop: threading.Event, group_id: str = "fleet", kafka_retry_s: float = 5.0) -> None:
        """Consume events, poll the buckets and (at an edge site) long-poll the front door until ``stop``."""
        topics = self._topics()
        threads = [
            threading.Thread(
                target=consume_model_published,
                args=(self.kafka, consumer_group(group_id), topics, self.on_event, stop, kafka_retry_s),
                name="edge-sync-events",
                daemon=True,
            ),
            threading.Thread(
                target=poll_bucket,
                args=(self.schedule_all, self.delivery.poll_s, stop),
                name="edge-sync-poll",
                daemon=True,
            ),
            *(
                threading.Thread(
                    target=long_poll,
                    args=(puller, self._slots[edge].spec.model_name, self._on_pulled(edge), stop),
                    name=f"edge-sync-door-{edge}",
                    daemon=True,
                )
                for edge, puller in self.pullers.items()
            ),
        ]
        if self.waves is not None:
            threads.append(
                threading.Thread(target=self.supervise, args=(stop,), name="edge-sync-waves", daemon=True)
            )
        for thread in threads:
            thread.start()
        stop.wait()
        for thread in threads:
            thread.join(timeout=10)
        self.close()

    def close(self) -> None:
        self._closed.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
