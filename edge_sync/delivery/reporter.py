"""The edge side of edge reports: what this store serves and how its predictor fares, sent to the core.

The core cannot reach a store (NAT), so the store's sync controller tells it: every
``report_s`` it reads its target back (the version served, the one before, a refused
one, a pin) and its predictor's counters, turns the difference since the last read into
one point (predictions, unsure, errors, latency percentiles) and sends the whole recent
series through the front door (``foundation.edge_report``).  The series is kept in the
controller's work folder, so a restarted controller goes on with it rather than
leaving a gap on the core's plots.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import TypeAdapter, ValidationError

from edge_sync.delivery.pull import DoorClient
from edge_sync.delivery.targets import Target
from edge_sync.delivery.targets.counters import Counters
from foundation.edge_report import MAX_POINTS, EdgeReport, ReportPoint
from foundation.errors import EdgecoreError

log = logging.getLogger(__name__)
MAX_INTERVAL_S = 86_400.0
"""A longer gap between two reads (the controller or the predictor was down) is not one interval."""
_POINTS = TypeAdapter(list[ReportPoint])


class Reporter:
    """One edge's reports: a point per interval, the recent series sent whole each time."""

    def __init__(
        self, door: DoorClient, target: Target, model: str, series_file: Path, interval_s: float
    ) -> None:
        self.door = door
        self.target = target
        self.model = model
        self.series_file = series_file
        self.interval_s = interval_s
        self._points = _load(series_file)
        self._last: tuple[datetime, Counters] | None = None

    def report(self) -> EdgeReport:
        """Read the target and send the report (raises when the door refuses)."""
        report = self.read()
        self.door.report(report)
        return report

    def read(self) -> EdgeReport:
        """The target read back, the interval since the last read added to the series."""
        now = datetime.now(UTC)
        state = self.target.state()
        counters = self.target.counters()
        if counters is None:
            self._last = None  # an interval with an unreadable end is no interval: start afresh
        else:
            seconds = (now - self._last[0]).total_seconds() if self._last is not None else 0.0
            if self._last is not None and 0 < seconds <= MAX_INTERVAL_S:
                self._add(_point(now, seconds, counters.since(self._last[1])))
            self._last = (now, counters)
        current = state.current
        return EdgeReport(
            edge=self.door.edge,
            model=self.model,
            at=now,
            serving=current.version if current else None,
            confirmed=current is not None and current.synced_at is not None,
            previous=state.previous.version if state.previous else None,
            rejected=state.rejected,
            pinned=state.pinned,
            points=list(self._points),
        )

    def run(self, stop: threading.Event) -> None:
        """Report every ``interval_s`` until ``stop``; a failed one is logged (its points go next time)."""
        while not stop.is_set():
            try:
                self.report()
            except (EdgecoreError, OSError, httpx.HTTPError, ValueError) as exc:  # the thread must live on
                log.warning("report to the core failed (%s); again in %.0f s", exc, self.interval_s)
            stop.wait(self.interval_s)

    def _add(self, point: ReportPoint) -> None:
        self._points = [*self._points, point][-MAX_POINTS:]
        partial = self.series_file.with_suffix(".partial")
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(_POINTS.dump_json(self._points))
        os.replace(partial, self.series_file)


def _point(at: datetime, seconds: float, seen: Counters) -> ReportPoint:
    latency = seen.latency if seen.latency is not None and seen.latency.count > 0 else None

    def ms(q: float) -> float | None:
        return round(latency.quantile(q) * 1000.0, 3) if latency is not None else None

    return ReportPoint(
        at=at,
        seconds=max(seconds, 0.001),
        predictions=round(seen.predictions),
        unsure=round(seen.unsure),
        errors=round(seen.errors),
        p50_ms=ms(0.5),
        p95_ms=ms(0.95),
        p99_ms=ms(0.99),
    )


def _load(path: Path) -> list[ReportPoint]:
    """The series a previous run of the controller kept; empty when there is none or it is unreadable."""
    if not path.is_file():
        return []
    try:
        return _POINTS.validate_json(path.read_bytes())[-MAX_POINTS:]
    except (ValidationError, OSError) as exc:
        log.warning("starting a new report series: %s could not be read (%s)", path, type(exc).__name__)
        return []
