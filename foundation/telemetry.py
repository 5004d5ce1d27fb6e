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
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from foundation.errors import InvalidInput

SENSORS = ("temperature_c", "vibration_mm_s", "current_a", "pressure_bar")
FAULT_KINDS = ("spike", "level_shift", "stuck", "frequency_change", "degradation")
NORMAL = 0
"""Label of a sample outside every fault; a fault's label is 1 + its index in ``FAULT_KINDS``."""
CONFIRMED = len(FAULT_KINDS) + 1
"""Label of a reading behind an alarm staff confirmed (``foundation.alarm_verdicts``): a fault of a
kind nobody named.  Only verdicts give it; a CSV file's labels are the kinds above."""


def label_name(label: int) -> str:
    return "confirmed by staff" if label == CONFIRMED else FAULT_KINDS[label - 1]


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
MAX_MACHINES = 1000
"""Machines one export may hold: each becomes an object of the dataset version."""
MAX_ABS_READING = 1e6
"""No sensor of a machine reads beyond a million in its unit: a value past it is a broken export or a
broken sensor, and one such value makes a sensor's scale infinite, blinding the model to it."""


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
    try:
        with path.open(newline="", encoding="utf-8") as source:
            reader = csv.DictReader(source)
            missing = [c for c in ("time", "machine", *sensors) if c not in (reader.fieldnames or [])]
            if missing:
                raise InvalidInput(
                    f"{path}: no column {', '.join(missing)} (found {', '.join(reader.fieldnames or [])})"
                )
            for number, record in enumerate(reader, start=2):
                if number - 1 > max_rows:
                    raise InvalidInput(f"{path}: more than {max_rows} rows; split the export")
                when, values, label = parse_row(record, sensors, path, number)
                rows.setdefault(record["machine"], []).append((when, values, label))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"{path}: not a UTF-8 CSV file ({type(exc).__name__})") from exc
    if len(rows) > MAX_MACHINES:
        raise InvalidInput(f"{path}: more than {MAX_MACHINES} machines; split the export")
    return [_series(machine, found, sensors, path) for machine, found in sorted(rows.items())]


def parse_row(
    record: dict[str | None, Any], sensors: tuple[str, ...], path: Path, number: int
) -> tuple[float, list[float], int]:
    """One row: its time (epoch seconds, or ISO 8601 read as UTC without a zone), readings and label."""
    if None in record or any(record.get(c) is None for c in ("time", "machine", *sensors)):
        raise InvalidInput(f"{path}: row {number} has more or fewer cells than the header")
    try:
        raw = record["time"]
        if raw.replace(".", "", 1).isdigit():
            when = float(raw)
        else:
            parsed = datetime.fromisoformat(raw)
            when = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
        values = [float(record[s]) if record[s] else math.nan for s in sensors]
        label = int(record.get("label") or 0)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(f"{path}: row {number} does not parse ({type(exc).__name__})") from exc
    if not NORMAL <= label <= len(FAULT_KINDS):
        raise InvalidInput(f"{path}: row {number} has a label outside 0 (normal) to {len(FAULT_KINDS)}")
    return when, values, label


def _series(
    machine: str, rows: list[tuple[float, list[float], int]], sensors: tuple[str, ...], path: Path
) -> Telemetry:
    times = np.array([r[0] for r in rows])
    values = np.array([r[1] for r in rows], dtype=np.float64)
    labels = np.array([r[2] for r in rows], dtype=np.int8)
    return series_from_arrays(machine, times, values, labels, sensors, path)


def series_from_arrays(
    machine: str,
    times: np.ndarray,
    values: np.ndarray,
    labels: np.ndarray,
    sensors: tuple[str, ...],
    path: Path,
) -> Telemetry:
    if not np.isfinite(times).all() or times.max() > time.time() + 86_400:  # seconds from a start are fine
        raise InvalidInput(f"{path}: machine {machine} has a time that is no number or in the future")
    if np.isinf(values).any() or (np.abs(np.nan_to_num(values)) > MAX_ABS_READING).any():
        raise InvalidInput(f"{path}: machine {machine} has a reading beyond ±{MAX_ABS_READING:g}")
    if ((labels < NORMAL) | (labels > len(FAULT_KINDS))).any():
        raise InvalidInput(f"{path}: machine {machine} has a label outside 0 (normal) to {len(FAULT_KINDS)}")
    order = np.argsort(times, kind="stable")
    times, values, labels = times[order], values[order], labels[order]
    steps = np.diff(times)
    if len(steps) == 0 or np.any(steps <= 0):
        raise InvalidInput(f"{path}: machine {machine} needs two or more readings at distinct times")
    period = float(np.median(steps))
    if np.any(np.abs(steps - period) > 0.5 * period):
        raise InvalidInput(
            f"{path}: machine {machine}'s readings are not evenly spaced (every {period:g} s mostly): "
            "leave a missing reading's sensor cells empty rather than its row out"
        )
    return Telemetry(machine, float(times[0]), period, values, labels.astype(np.int8), (), sensors)


def read_telemetry(
    path: Path, sensors: tuple[str, ...] = SENSORS, max_rows: int = MAX_ROWS
) -> list[Telemetry]:
    """A CSV or Parquet export, by its suffix."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return read_parquet(path, sensors, max_rows)
    return read_csv(path, sensors, max_rows)


def read_parquet(path: Path, sensors: tuple[str, ...] = SENSORS, max_rows: int = MAX_ROWS) -> list[Telemetry]:
    """The same series from a Parquet export: the CSV's columns, ``time`` in seconds or a timestamp,
    a null sensor value missing.  Its row count is read from the footer before any data."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        raise InvalidInput(f"{path}: not a readable Parquet file ({type(exc).__name__})") from exc
    if meta.num_rows > max_rows:
        raise InvalidInput(f"{path}: more than {max_rows} rows; split the export")
    names = meta.schema.names
    missing = [c for c in ("time", "machine", *sensors) if c not in names]
    if missing:
        raise InvalidInput(f"{path}: no column {', '.join(missing)} (found {', '.join(names)})")
    table = pq.read_table(
        path, columns=["time", "machine", *sensors, *(["label"] if "label" in names else [])]
    )
    try:
        times = _seconds(table["time"], pa, pc)
        machines = np.asarray(table["machine"].cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)
        values = np.column_stack(
            [pc.cast(table[s], pa.float64()).to_numpy(zero_copy_only=False) for s in sensors]
        ).astype(np.float64)
        labels = (
            pc.fill_null(pc.cast(table["label"], pa.int8()), 0).to_numpy(zero_copy_only=False)
            if "label" in names
            else np.zeros(len(times), np.int8)
        )
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidInput(f"{path}: a column does not hold what it should ({type(exc).__name__})") from exc
    if any(m is None for m in machines) or np.isnan(times).any():
        raise InvalidInput(f"{path}: a row has no machine or no time")
    found, which = np.unique(machines.astype(str), return_inverse=True)  # one pass, not one per machine
    if len(found) > MAX_MACHINES:
        raise InvalidInput(f"{path}: more than {MAX_MACHINES} machines; split the export")
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(len(found) + 1))
    return [
        series_from_arrays(str(m), times[rows], values[rows], labels[rows], sensors, path)
        for m, rows in ((m, order[bounds[i] : bounds[i + 1]]) for i, m in enumerate(found))
    ]


def _seconds(column: Any, pa: Any, pc: Any) -> np.ndarray:
    """Epoch seconds of a time column: a timestamp (any unit, any zone) or a number of seconds."""
    if pa.types.is_timestamp(column.type):
        micros = pc.cast(pc.cast(column, pa.timestamp("us", tz=column.type.tz)), pa.int64())
        return np.asarray(micros.to_numpy(zero_copy_only=False), dtype=np.float64) / 1e6
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    raise TypeError(f"time column of type {column.type}")
