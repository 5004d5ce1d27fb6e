"""A store's batch of live readings, read as a telemetry dataset version needs them.

An export (``foundation.telemetry.read_csv``) is complete and evenly sampled, and anything
else in it is a mistake to refuse.  A batch of live readings is neither, and that is no
mistake: devices go quiet for a while, a machine sends one reading before the batch
closes, a reading comes again after a gateway restart.  :func:`read_batch` keeps what
training can use and counts what it leaves out.  Each machine's readings are taken in time
order, once each, and split into runs wherever a gap breaks the machine's sampling period,
so no window spans an outage.  A reading closer than half a period to the one before is
dropped, and so is a run of a single reading.  A row that does not parse still refuses
the whole batch, and no message quotes the batch's bytes.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from foundation.errors import InvalidInput
from foundation.layout import check_name
from foundation.telemetry import MAX_MACHINES, Telemetry, parse_row, series_from_arrays

BATCH = Path("the batch")
"""What messages call the file: a scratch copy's path means nothing to the store."""
GAP = 1.5
"""A step longer than this many sampling periods ends a run: the readings between are missing."""


def read_batch(data: bytes, sensors: tuple[str, ...], max_rows: int) -> tuple[list[Telemetry], int]:
    """The runs of every machine in the batch ``data`` (a request's body), and how many readings were
    left out."""
    rows: dict[str, list[tuple[float, list[float], int]]] = {}
    try:
        with io.StringIO(data.decode("utf-8"), newline="") as source:
            reader = csv.DictReader(source)
            if any(c not in (reader.fieldnames or []) for c in ("time", "machine", *sensors)):
                raise InvalidInput(f"a batch needs the columns time, machine, {', '.join(sensors)} and label")
            for number, record in enumerate(reader, start=2):
                if number - 1 > max_rows:
                    raise InvalidInput(f"a batch holds at most {max_rows} readings")
                machine = check_name(record.get("machine") or "", f"machine id in row {number}")
                if machine not in rows and len(rows) >= MAX_MACHINES:
                    raise InvalidInput(f"a batch holds at most {MAX_MACHINES} machines")
                rows.setdefault(machine, []).append(parse_row(record, sensors, BATCH, number))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"a batch must be a UTF-8 CSV file ({type(exc).__name__})") from exc
    runs: list[Telemetry] = []
    left_out = 0
    for machine, found in sorted(rows.items()):
        kept, dropped = _runs(machine, found, sensors)
        runs.extend(kept)
        left_out += dropped
    return runs, left_out


def _runs(
    machine: str, rows: list[tuple[float, list[float], int]], sensors: tuple[str, ...]
) -> tuple[list[Telemetry], int]:
    rows = sorted(rows, key=lambda r: r[0])
    times = np.array([r[0] for r in rows], np.float64)
    steps = np.diff(times)
    period = float(np.median(steps[steps > 0])) if (steps > 0).any() else 0.0
    keep = [0]
    for i in range(1, len(rows)):
        if times[i] - times[keep[-1]] >= 0.5 * period > 0:
            keep.append(i)
    dropped = len(rows) - len(keep)
    runs, start = [], 0
    for j in range(1, len(keep) + 1):
        if j == len(keep) or times[keep[j]] - times[keep[j - 1]] > GAP * period:
            run = keep[start:j]
            if len(run) < 2:
                dropped += len(run)
            else:
                values = np.array([rows[i][1] for i in run], np.float64)
                labels = np.array([rows[i][2] for i in run], np.int8)
                try:
                    runs.append(series_from_arrays(machine, times[run], values, labels, sensors, BATCH))
                except InvalidInput:  # sampled too unevenly to window: left out, and counted
                    dropped += len(run)
            start = j
    return runs, dropped
