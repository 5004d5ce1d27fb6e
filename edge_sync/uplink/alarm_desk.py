"""The staff's view of machine alarms: the windows that raised one, to confirm or dismiss.

The edge's sensor monitor keeps each window that raised an alarm in the store's bucket
(``anomalies/<machine>/<day>/<id>.json``, ``serving.anomaly_reports``).  Staff who know
the machine say whether it was a real fault (confirmed) or a false alarm (dismissed); the
verdict is written once beside the window (``<id>.verdict.json``) and never overwritten,
and queued for the core (``VerdictQueue``: the telemetry batches, shipped through the front
door) with the span of readings behind the alarm, so the next round learns from it
(``foundation.alarm_verdicts``).  It is queued first: a gateway that dies in between has
queued a verdict staff can give again, never recorded one it failed to queue.  A verdict
stays at the store, unshipped, where the gateway keeps no telemetry (a fixed model's) or the
window names no span (kept before spans were).  A window with a verdict is not shown again.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from pydantic import ValidationError

from edge_sync.uplink.review import parse_day
from foundation.alarm_verdicts import MAX_SPAN_S, AlarmVerdict
from foundation.errors import Conflict, EdgecoreError, InvalidInput, NotFound
from foundation.layout import VERDICT_SUFFIX, Layout, Location, check_image_id, check_name
from foundation.storage.store import ObjectStore

log = logging.getLogger(__name__)
MAX_WINDOW_BYTES = 1024 * 1024
ALARMS_SHOWN = 48
ALARM_DAY = "an alarm day"
Verdict = Literal["confirmed", "dismissed"]


class VerdictQueue(Protocol):
    def queue_verdict(self, verdict: AlarmVerdict) -> Path:
        """Keep ``verdict`` until the core has it; the file that holds it."""
        ...


class AlarmDesk:
    """One store's alarm windows awaiting a verdict."""

    def __init__(
        self, edge: str, store: ObjectStore, layout: Layout, verdicts: VerdictQueue | None = None
    ) -> None:
        """``verdicts``: None where the gateway keeps no telemetry for the core (a fixed model's)."""
        self.edge = check_name(edge, "edge id")
        self.store = store
        self.layout = layout
        self.verdicts = verdicts
        self._judging = threading.Lock()
        """One verdict at a time: two given at once on one window must not both reach the core."""

    def waiting(self, limit: int = ALARMS_SHOWN) -> tuple[list[dict[str, Any]], int]:
        """The newest ``limit`` alarm windows without a verdict (readings included), and how many wait."""
        keys = [o.location.key for o in self.store.list(self.layout.anomalies_prefix(self.edge))]
        judged = {k.removesuffix(VERDICT_SUFFIX) for k in keys if k.endswith(VERDICT_SUFFIX)}
        open_ = [k for k in keys if not k.endswith(VERDICT_SUFFIX) and k.removesuffix(".json") not in judged]
        newest = sorted(
            open_, key=lambda k: k.split("/", 2)[-1], reverse=True
        )  # <day>/<time>-…: newest first
        shown = [w for w in (self._read(k) for k in newest[: max(0, min(limit, ALARMS_SHOWN))]) if w]
        return shown, len(open_)

    def judge(self, machine: str, day: str, window_id: str, verdict: str, by: str) -> dict[str, Any]:
        """Record staff's verdict on one alarm window, once."""
        if verdict not in ("confirmed", "dismissed"):
            raise InvalidInput("a verdict is confirmed or dismissed")
        when = parse_day(day, ALARM_DAY)
        window = self.layout.anomaly_window(self.edge, machine, when, check_image_id(window_id))
        with self._judging:
            return self._judge(machine, day, window_id, verdict, by, window)

    def _judge(
        self, machine: str, day: str, window_id: str, verdict: str, by: str, window: Location
    ) -> dict[str, Any]:
        target = self.layout.anomaly_verdict(self.edge, machine, parse_day(day, ALARM_DAY), window_id)
        if self.store.exists(target):
            raise Conflict(f"alarm window {window_id} of {machine} already has a verdict")
        try:
            kept = json.loads(self.store.get_bytes(window, max_bytes=MAX_WINDOW_BYTES))
        except NotFound:
            raise NotFound(f"edge {self.edge}: no alarm window {window_id} of {machine} on {day}") from None
        now = datetime.now(UTC)
        queued = self._queue(machine, window_id, kept, verdict, now)
        record = {"verdict": verdict, "by": by, "at": now.isoformat()}
        if not self.store.put_if_absent(target, json.dumps(record).encode()):
            if queued is not None:
                queued.unlink(missing_ok=True)  # another verdict won: it is the one the core gets
            raise Conflict(f"alarm window {window_id} of {machine} already has a verdict")
        log.info("edge %s: alarm window %s of %s %s by %s", self.edge, window_id, machine, verdict, by)
        return record

    def _queue(
        self, machine: str, window_id: str, kept: dict[str, Any], verdict: str, at: datetime
    ) -> Path | None:
        """The verdict queued for the core, with the span of readings behind the alarm."""
        if self.verdicts is None:
            return None
        try:  # from the alarm's first window to its last anomalous one, or its raising while it stands
            end = kept.get("anomalous_until") or kept["window_end"]
            span = (datetime.fromisoformat(kept["span_start"]), datetime.fromisoformat(end))
            span = (span[0], min(span[1], span[0] + timedelta(seconds=MAX_SPAN_S)))
        except (KeyError, TypeError, ValueError):
            log.warning(
                "edge %s: alarm window %s predates spans: its verdict stays here", self.edge, window_id
            )
            return None
        try:
            one = AlarmVerdict(
                machine=machine,
                window_id=window_id,
                start=span[0].timestamp(),
                end=span[1].timestamp(),
                verdict=cast(Verdict, verdict),
                at=at,
            )
        except ValidationError:  # a kept window whose span the contract cannot carry
            log.warning(
                "edge %s: alarm window %s has no usable span: its verdict stays here", self.edge, window_id
            )
            return None
        return self.verdicts.queue_verdict(one)

    def _read(self, key: str) -> dict[str, Any] | None:
        try:
            _, machine, day, name = key.split("/", 3)
            loc = self.layout.anomaly_window(
                self.edge, machine, parse_day(day, ALARM_DAY), name.removesuffix(".json")
            )
            body = json.loads(self.store.get_bytes(loc, max_bytes=MAX_WINDOW_BYTES))
            sensors = [str(s) for s in body.get("sensors", [])]
            readings = [[None if v is None else float(v) for v in row] for row in body["readings"]]
            if not readings or not sensors or any(len(row) != len(sensors) for row in readings):
                raise ValueError("readings do not match the sensors")  # the page plots one line per sensor
            error, threshold = float(body["error"]), float(body["threshold"])
            numbers = [error, threshold, *(v for r in readings for v in r if v is not None)]
            if not all(math.isfinite(v) for v in numbers):
                raise ValueError("a number that JSON cannot carry")
            return {
                "machine": machine,
                "day": day,
                "window_id": name.removesuffix(".json"),
                "window_end": str(body["window_end"]),
                "error": error,
                "threshold": threshold,
                "texture_distance": _number(body.get("texture_distance")),
                "texture_threshold": _number(body.get("texture_threshold")),
                "sensors": sensors,
                "readings": readings,
            }
        except (ValueError, KeyError, TypeError, EdgecoreError) as exc:  # a stray key, a vanished window
            log.warning(
                "edge %s: skipped the unreadable alarm window %s: %s", self.edge, key, type(exc).__name__
            )
            return None


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
