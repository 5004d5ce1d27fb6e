"""The staff's view of machine alarms: the windows that raised one, to confirm or dismiss.

The edge's sensor monitor keeps each window that raised an alarm in the store's bucket
(``anomalies/<machine>/<day>/<id>.json``, ``serving.anomaly_reports``).  Staff who know
the machine say whether it was a real fault (confirmed) or a false alarm (dismissed); the
verdict is written once beside the window (``<id>.verdict.json``) and never overwritten,
so the next round's training can learn from it.  A window with a verdict is not shown again.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from typing import Any, Literal

from edge_sync.uplink.review import parse_day
from foundation.errors import Conflict, EdgecoreError, InvalidInput, NotFound
from foundation.layout import VERDICT_SUFFIX, Layout, check_image_id, check_name
from foundation.storage.store import ObjectStore

log = logging.getLogger(__name__)
MAX_WINDOW_BYTES = 1024 * 1024
ALARMS_SHOWN = 48
ALARM_DAY = "an alarm day"
Verdict = Literal["confirmed", "dismissed"]


class AlarmDesk:
    """One store's alarm windows awaiting a verdict."""

    def __init__(self, edge: str, store: ObjectStore, layout: Layout) -> None:
        self.edge = check_name(edge, "edge id")
        self.store = store
        self.layout = layout

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
        if not self.store.exists(window):
            raise NotFound(f"edge {self.edge}: no alarm window {window_id} of {machine} on {day}")
        record = {"verdict": verdict, "by": by, "at": datetime.now(UTC).isoformat()}
        target = self.layout.anomaly_verdict(self.edge, machine, when, window_id)
        if not self.store.put_if_absent(target, json.dumps(record).encode()):
            raise Conflict(f"alarm window {window_id} of {machine} already has a verdict")
        log.info("edge %s: alarm window %s of %s %s by %s", self.edge, window_id, machine, verdict, by)
        return record

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
