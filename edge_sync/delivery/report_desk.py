"""The core side of edge reports: the front door keeps each edge's newest report, for the core's page.

    PUT /v1/edges/{edge}/report   (the edge's token; a ``foundation.edge_report.EdgeReport``)
        → 204, the report stored as ``Layout.edge_report(edge)`` with the door's receive time

An edge reports only on itself, at most once per ``min_interval_s``
(``EDGECORE_DOOR_REPORT_INTERVAL_S``).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from foundation.credentials import Credentials
from foundation.edge_report import EdgeReport
from foundation.errors import InvalidInput
from foundation.layout import Layout, edge_model_name
from foundation.storage.objects import ObjectWriter

log = logging.getLogger(__name__)


class ReportDesk:
    """Checks who reports and on whom, then writes the report over the edge's previous one."""

    def __init__(
        self, store: ObjectWriter, layout: Layout, credentials: Credentials, min_interval_s: float
    ) -> None:
        self.store = store
        self.layout = layout
        self.credentials = credentials
        self.min_interval_s = min_interval_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def authorize(self, edge: str, authorization: str | None) -> None:
        self.credentials.authenticate_edge(edge, authorization, "a report")

    def accept(self, edge: str, body: bytes) -> bool:
        """Store ``edge``'s report; False when it came sooner than ``min_interval_s`` after the last
        (dropped: the next one carries its points)."""
        report = EdgeReport.from_bytes(body, f"from edge {edge}")
        if report.edge != edge or report.model != edge_model_name(edge):
            raise InvalidInput(f"a report sent as edge {edge} names another edge or model")
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(edge, -self.min_interval_s) < self.min_interval_s:
                return False
        stamped = report.model_copy(update={"received": datetime.now(UTC)})
        self.store.put_bytes(self.layout.edge_report(edge), stamped.to_bytes(), "application/json")
        with self._lock:  # only a stored report counts: a failed write does not hold the next one back
            self._last[edge] = now
        return True
