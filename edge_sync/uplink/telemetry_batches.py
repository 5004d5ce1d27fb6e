"""The store's telemetry batches: readings kept on disk until the core has them.

The gateway's sensor monitor hands every reading it took (in time order per machine, each
once) to :class:`TelemetryBatches`, which appends it to the open batch, a canonical CSV
file (``foundation.telemetry``: time, machine, one column per sensor, label 0, since the
edge does not know faults).  A batch closes when it holds ``max_rows`` readings or has
been open ``max_age_s``: it is flushed to disk and renamed to ``ready/<when>-<sha256>.csv``,
which the telemetry shipper sends through the front door and deletes once the core
answered with its version.  Staff's verdicts on alarms wait in the same queue
(``ready/<when>-<sha256>.json``, ``foundation.alarm_verdicts``), after the open batch is
closed: the core has the readings a verdict speaks of before the verdict.  So readings
survive a gateway restart (the open batch is closed as it is on the next start), and the
disk they take is bounded: past ``max_ready_bytes`` of unshipped batches, the oldest is
dropped, and counted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from foundation.alarm_verdicts import AlarmVerdict, VerdictBatch
from foundation.telemetry import SENSORS

log = logging.getLogger(__name__)
OPEN = "open.csv"
REJECTED = "rejected"


class TelemetryBatches:
    def __init__(
        self,
        root: Path,
        sensors: tuple[str, ...] = SENSORS,
        max_rows: int = 20_000,
        max_age_s: float = 3600.0,
        max_ready_bytes: int = 1 << 30,
    ) -> None:
        self.root = root
        self.ready_dir = root / "ready"
        self.ready_dir.mkdir(parents=True, exist_ok=True)
        self.sensors = sensors
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self.max_ready_bytes = max_ready_bytes
        self.dropped = 0
        """Batches dropped unshipped because the disk bound was reached."""
        self._lock = threading.Lock()
        self._rows = 0
        self._opened = time.monotonic()
        for torn in self.ready_dir.glob("*.part"):  # a verdict being written when the gateway died
            torn.unlink()
        self.close_batch()  # what a previous run left open is a batch of its own

    def record(
        self, machine: str, sensors: Sequence[str], times: Sequence[float], rows: Sequence[Sequence[float]]
    ) -> None:
        """Append ``machine``'s readings (``rows[i][j]``: ``sensors[j]`` at ``times[i]``; NaN: missing)."""
        if not times:
            return
        where = {name: i for i, name in enumerate(sensors)}
        text = io.StringIO()
        writer = csv.writer(text)
        for when, row in zip(times, rows, strict=True):
            cells = [row[where[s]] if s in where else math.nan for s in self.sensors]
            writer.writerow(
                [f"{when:.3f}", machine, *("" if math.isnan(v) else f"{v:.4f}" for v in cells), 0]
            )
        with self._lock:
            path = self.root / OPEN
            fresh = not path.exists()
            with path.open("a", newline="") as out:
                if fresh:
                    csv.writer(out).writerow(["time", "machine", *self.sensors, "label"])
                    out.flush()
                    self._opened = time.monotonic()
                before = out.tell()
                try:
                    out.write(text.getvalue())
                    out.flush()
                except OSError:  # a full disk: no half row may stay for the next one to run into
                    out.truncate(before)
                    raise
            self._rows += len(times)
            if self._rows >= self.max_rows:
                self._close()

    def close_due(self) -> None:
        """Close the open batch if it has been open ``max_age_s`` (the shipper calls this)."""
        with self._lock:
            if self._rows and time.monotonic() - self._opened >= self.max_age_s:
                self._close()

    def close_batch(self) -> Path | None:
        with self._lock:
            return self._close()

    def queue_verdict(self, verdict: AlarmVerdict) -> Path:
        """``verdict`` queued behind the readings taken so far (the open batch is closed first)."""
        body = VerdictBatch(verdicts=[verdict]).model_dump_json().encode()
        with self._lock:
            self._close()
            target = self.ready_dir / f"{time.time_ns():020d}-{hashlib.sha256(body).hexdigest()}.json"
            scratch = target.with_suffix(".part")
            with scratch.open("wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(scratch, target)
        return target

    def ready(self) -> list[Path]:
        """Closed batches and verdicts, oldest first."""
        return sorted(p for p in self.ready_dir.iterdir() if p.suffix in (".csv", ".json"))

    def _close(self) -> Path | None:
        path = self.root / OPEN
        self._rows = 0
        if not path.exists():
            return None
        with path.open("rb+") as handle:
            data = handle.read()
            if not data.endswith(b"\n"):  # a gateway killed mid-write: its torn last row goes
                data = data[: data.rfind(b"\n") + 1]
                handle.truncate(len(data))
            os.fsync(handle.fileno())
        if data.count(b"\n") < 2:  # the header alone
            path.unlink()
            return None
        digest = hashlib.sha256(data).hexdigest()
        target = self.ready_dir / f"{time.time_ns():020d}-{digest}.csv"  # names sort oldest first
        os.replace(path, target)
        self._bound()
        return target

    def _bound(self) -> None:
        """Batches the core refused (``rejected/``, kept for an operator) go first, then the oldest.
        Verdicts are never dropped: a few hundred bytes each, and staff's word is not sampled."""
        rejected = sorted((self.root / REJECTED).glob("*.csv"))
        ready = rejected + [p for p in self.ready() if p.suffix == ".csv"]
        total = sum(p.stat().st_size for p in ready)
        while ready and total > self.max_ready_bytes:
            oldest = ready.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink(missing_ok=True)
            oldest.with_suffix(".reason").unlink(missing_ok=True)
            self.dropped += 1
            log.warning(
                "telemetry batch %s dropped unshipped: over %d bytes wait for the core",
                oldest.name,
                self.max_ready_bytes,
            )


def batch_digest(path: Path) -> str:
    """The sha256 a closed batch's name carries (``<when>-<sha256>.csv``, or ``.json`` for verdicts)."""
    return path.stem.rsplit("-", 1)[-1]
