"""The telemetry shipper: sends each closed batch of readings, and staff's verdicts, through the front door.

A batch (``edge_sync.uplink.telemetry_batches``) is posted whole as ``text/csv``
(verdicts as ``application/json``), named by its sha256, to ``/v1/edges/<edge>/telemetry``;
the core answers with the version of ``<edge>-telemetry`` it became (201, or 200 for a
batch it already has), and only then is the file deleted.  As for photo sets, a 401 or
403 is the edge's credential, not its readings: the batch waits for the fix, as it does
for a core without this route yet (404, 405) or not taking verdicts on it yet (415).
The core unreachable, a 5xx or a 408/425/429 is tried again on the next round.  Any other
4xx is the batch itself: it is moved aside to ``rejected/`` with the core's reason beside
it, for an operator, and never sent again (the batches' disk bound counts it).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import httpx

from edge_sync.uplink.telemetry_batches import REJECTED, TelemetryBatches, batch_digest
from edge_sync.uplink.telemetry_desk import DIGEST_HEADER

log = logging.getLogger(__name__)
MEDIA_TYPES = {".csv": "text/csv", ".json": "application/json"}
WAIT_STATUSES = {401, 403, 404, 405, 408, 415, 425, 429}
"""The credential, a core without the telemetry route yet (404, 405) or without verdicts on it (415),
or the core busy: wait."""


class TelemetryShipper:
    def __init__(self, door_url: str, edge: str, client: httpx.Client, batches: TelemetryBatches) -> None:
        """``client`` carries the edge's credential and trusts the core's CA (as the set shipper's)."""
        self.url = f"{door_url.rstrip('/')}/v1/edges/{edge}/telemetry"
        self.edge = edge
        self.batches = batches
        self.rejected_dir = batches.root / REJECTED
        self._client = client

    def ship_ready(self) -> dict[str, str]:
        """Close a batch that is due, then send every closed one: {batch file: outcome}."""
        self.batches.close_due()
        return {path.name: self._ship(path) for path in self.batches.ready()}

    def run(self, stop: threading.Event, interval_s: float) -> None:
        while not stop.is_set():
            try:
                self.ship_ready()
            except Exception:  # the batches stay on disk: logged, tried again
                log.exception("edge %s: telemetry shipping round failed", self.edge)
            stop.wait(interval_s)

    def close(self) -> None:
        self._client.close()

    def _ship(self, path: Path) -> str:
        try:
            body, digest = path.read_bytes(), batch_digest(path)
        except FileNotFoundError:  # dropped for the disk bound since it was listed
            return "dropped"
        try:
            response = self._client.post(
                self.url,
                content=body,
                headers={"Content-Type": MEDIA_TYPES[path.suffix], DIGEST_HEADER: digest},
                timeout=httpx.Timeout(120.0, connect=5.0),
            )
        except httpx.TransportError as exc:
            log.warning("edge %s: telemetry batch %s… waits: %s", self.edge, digest[:12], exc)
            return "retry"
        if response.status_code in (200, 201):
            version = str(response.json().get("version"))
            path.unlink(missing_ok=True)
            log.info("edge %s: telemetry batch %s… shipped as %s", self.edge, digest[:12], version)
            return "shipped"
        reason = response.text[:500]
        if response.status_code in WAIT_STATUSES or response.status_code >= 500:
            log.warning(
                "edge %s: telemetry batch %s… waits: HTTP %d", self.edge, digest[:12], response.status_code
            )
            return "retry"
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        path.replace(self.rejected_dir / path.name)
        (self.rejected_dir / f"{path.stem}.reason").write_text(f"HTTP {response.status_code}: {reason}\n")
        log.error(
            "edge %s: telemetry batch %s… rejected: HTTP %d", self.edge, digest[:12], response.status_code
        )
        return "rejected"
