"""Machine telemetry, the sensor use case's data: one machine's readings, and their CSV form.

A series is what every step shares: the generator makes one (``edgecore.synthetic.telemetry``),
a plant's export is read into one, the core stores them as dataset files, and the sensor
pipeline windows them.  CSV, one row per reading time and machine: ``time`` (epoch
seconds or ISO 8601), ``machine``, a column per sensor (empty: missing) and, optionally,
``label`` (0 normal, else a fault's).  A real export rarely matches exactly, so reading
says in one line what is wrong: a missing column, a row that does not parse, uneven time
steps, or more rows than ``max_rows``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from foundation.errors import InvalidInput

SENSORS = ("temperature_c", "vibration_mm_s", "current_a", "pressure_bar")
FAULT_KINDS = ("spike", "level_shift", "stuck", "frequency_change", "degradation")
NORMAL = 0
"""Label of a sample outside every fault; a fault's label is 1 + its index in ``FAULT_KINDS``."""


@dataclass(frozen=True)
class Fault:
    kind: str
    sensor: str
    start: int
    """First sample of the fault."""
    end: int
    """One past its last sample."""

    @property
    def label(self) -> int:
        return 1 + FAULT_KINDS.index(self.kind)


@dataclass(frozen=True)
class Telemetry:
    """One machine's readings: ``values[i, j]`` is sensor ``j`` at sample ``i`` (NaN: missing)."""

    machine: str
    start: float
    """Epoch seconds of the first sample."""
    period_s: float
    values: np.ndarray
    labels: np.ndarray
    faults: tuple[Fault, ...] = ()
    sensors: tuple[str, ...] = SENSORS

    @property
    def times(self) -> np.ndarray:
        return self.start + self.period_s * np.arange(len(self.values))

    def column(self, sensor: str) -> np.ndarray:
        return self.values[:, self.sensors.index(sensor)]


MAX_ROWS = 5_000_000


def write_csv(series: list[Telemetry], path: Path) -> None:
    sensors = series[0].sensors if series else SENSORS
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["time", "machine", *sensors, "label"])
        for one in series:
            for when, row, label in zip(one.times, one.values, one.labels, strict=True):
                cells = ["" if math.isnan(v) else f"{v:.4f}" for v in row]
                writer.writerow([f"{when:.3f}", one.machine, *cells, int(label)])


def read_csv(path: Path, sensors: tuple[str, ...] = SENSORS, max_rows: int = MAX_ROWS) -> list[Telemetry]:
    """Each machine's series, in time order, with the sampling period its rows keep."""
    rows: dict[str, list[tuple[float, list[float], int]]] = {}
    with path.open(newline="") as source:
        reader = csv.DictReader(source)
        missing = [c for c in ("time", "machine", *sensors) if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInput(
                f"{path}: no column {', '.join(missing)} (found {', '.join(reader.fieldnames or [])})"
            )
        for number, record in enumerate(reader, start=2):
            if number - 1 > max_rows:
                raise InvalidInput(f"{path}: more than {max_rows} rows; split the export")
            when, values, label = _parse(record, sensors, path, number)
            rows.setdefault(record["machine"], []).append((when, values, label))
    return [_series(machine, found, sensors, path) for machine, found in sorted(rows.items())]


def _parse(
    record: dict[str, str], sensors: tuple[str, ...], path: Path, number: int
) -> tuple[float, list[float], int]:
    try:
        raw = record["time"]
        when = float(raw) if raw.replace(".", "", 1).isdigit() else datetime.fromisoformat(raw).timestamp()
        values = [float(record[s]) if record[s] else math.nan for s in sensors]
        label = int(record.get("label") or 0)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{path}: row {number} does not parse ({type(exc).__name__})") from exc
    return when, values, label


def _series(
    machine: str, rows: list[tuple[float, list[float], int]], sensors: tuple[str, ...], path: Path
) -> Telemetry:
    rows.sort(key=lambda r: r[0])
    times = np.array([r[0] for r in rows])
    steps = np.diff(times)
    if len(steps) == 0 or np.any(steps <= 0):
        raise InvalidInput(f"{path}: machine {machine} needs two or more readings at distinct times")
    period = float(np.median(steps))
    if np.any(np.abs(steps - period) > 0.5 * period):
        raise InvalidInput(
            f"{path}: machine {machine}'s readings are not evenly spaced (every {period:g} s mostly): "
            "leave a missing reading's sensor cells empty rather than its row out"
        )
    values = np.array([r[1] for r in rows], dtype=np.float64)
    labels = np.array([r[2] for r in rows], dtype=np.int8)
    return Telemetry(machine, float(times[0]), period, values, labels, (), sensors)
