"""The edge's sensor monitor: a device's readings in, windows scored in-stream, a machine's alarm out.

The gateway's MQTT intake hands each message of ``edge/<edge>/sensors/<device>/<machine>``
here (``edge_sync.uplink.mqtt``).  A message holds one reading or a batch, each a time
and a value per sensor::

    {"readings": [{"t": 1767225600.0, "values": {"temperature_c": 41.2, "vibration_mm_s": 2.1, ...}}]}

Readings join their machine's window the way training built windows
(``components.anomaly.windows``): a missing value takes its sensor's last reading; every
``stride`` readings the last ``window`` form one window (``foundation.sensor_model``).  The windows a message
completes are scored together (one LiteRT call), then fed in order to the machine's
K-of-N alarm; an alarm raised goes to the sink (an event, the window kept for review).
Bad input is refused whole, with a reason that never repeats it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foundation.errors import (
    EdgecoreError,
    Forbidden,
    InvalidInput,
    PayloadTooLarge,
    http_status,
    validation_reason,
)
from foundation.layout import check_name
from foundation.telemetry import MAX_ABS_READING
from serving.alarms import AlarmChange, Alarms
from serving.anomaly import WindowScorer
from serving.metrics import SensorMetrics

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 256 * 1024
MAX_READINGS = 2000
"""Readings in one message: a device batching a few seconds of a fast bus."""

Array = npt.NDArray[np.float32]
Value = Annotated[float, Field(allow_inf_nan=False)] | None


class Reading(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    t: float = Field(ge=0, le=32_503_680_000)
    """Seconds since the epoch, the device's clock."""
    values: dict[str, Value] = Field(max_length=64)


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    readings: list[Reading] = Field(min_length=1, max_length=MAX_READINGS)


@dataclass(frozen=True)
class Alarm:
    """An alarm raised, with the window that raised it (readings as the device sent them, gaps filled)."""

    change: AlarmChange
    window: Array
    window_end: datetime
    texture_distance: float | None = None
    """How far the raising window's texture lay from normal (None: the model has no texture detector)."""
    span_start: datetime | None = None
    """When the first reading of the earliest of the windows behind the alarm (its last N) was taken:
    what staff's verdict on it covers (``foundation.alarm_verdicts``)."""


class AlarmSink(Protocol):
    def raised(self, alarm: Alarm) -> None:
        """Tell the world (an event, the window kept); must not raise for an outage of either."""
        ...

    def cleared(self, machine: str, at: datetime, flagged_until: datetime | None) -> None:
        """The machine's alarm cleared at ``at`` (its last reading's time), its last anomalous window
        having ended at ``flagged_until`` (None: none under this model version); must not raise either."""
        ...


class ReadingsRecorder(Protocol):
    def record(
        self, machine: str, sensors: Sequence[str], times: Sequence[float], rows: Sequence[Sequence[float]]
    ) -> None:
        """Keep ``machine``'s readings for the core (``edge_sync.uplink.telemetry_batches``)."""
        ...


MACHINES_PER_DEVICE = 64
"""Machines one device may report: one device naming ever-new machines cannot take every other
device's place among the machines watched."""
MAX_CLOCK_AHEAD_S = 300.0
"""A reading timed further ahead of the gateway's clock is refused: taken, it would make the
machine's every later reading look already seen, silently ending its monitoring."""
MEMORY_BUDGET = 256 * 1024 * 1024
"""What the machines' windows may hold in all; with the model's window it bounds how many are watched."""


@dataclass
class _Series:
    rows: deque[npt.NDArray[np.float32]]
    """The last readings, gaps filled with the sensor's last reading (what the autoencoder sees)."""
    raw: deque[npt.NDArray[np.float32]]
    """The same readings as they arrived, gaps as NaN (what texture is read from)."""
    last: npt.NDArray[np.float32]
    device: str
    """The device that reports this machine: another one is refused (it cannot raise or mask its alarms)."""
    last_t: float = float("-inf")
    """The newest reading's time: one not newer (a message delivered again) is skipped."""
    since: int = 0
    step: float = 0.0
    """The machine's usual time between readings, learnt as they come (gaps do not inflate it)."""
    flagged_until: float | None = None
    """When the machine's last anomalous window ended: what staff's verdict on its alarm covers."""

    def after_gap(self, t: float, window: int) -> None:
        """Start the window afresh when ``t`` comes after an outage longer than a window: training
        never joins readings across an outage into one window."""
        if self.last_t == float("-inf"):
            return
        dt = t - self.last_t
        outage = self.step > 0 and dt > window * self.step
        self.step = dt if self.step == 0 else 0.9 * self.step + 0.1 * min(dt, 2 * self.step)
        if outage:
            self.rows.clear()
            self.raw.clear()
            self.since = 0


@dataclass
class SensorMonitor:
    scorer: WindowScorer
    alarms: Alarms
    sink: AlarmSink
    metrics: SensorMetrics
    clock: Callable[[], float] = time.time
    recorder: ReadingsRecorder | None = None
    """Where every reading taken goes as well, to ship to the core for the next round."""
    _series: dict[str, _Series] = field(default_factory=dict)

    def take(self, device: str, machine: str, payload: bytes) -> dict[str, Any]:
        """One MQTT message of ``device`` about ``machine``: what HTTP would answer, as a dict."""
        try:
            check_name(device, "device id")
            check_name(machine, "machine id")
            if len(payload) > MAX_MESSAGE_BYTES:
                raise PayloadTooLarge(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
            readings = _parse(payload).readings
            raised = self.readings(machine, readings, device)
        except EdgecoreError as exc:
            return {"status": http_status(exc), "device": device, "machine": machine, "reason": str(exc)}
        return {
            "status": 202,
            "device": device,
            "machine": machine,
            "readings": len(readings),
            "alarms": [a.change.machine for a in raised],
        }

    def readings(self, machine: str, readings: list[Reading], device: str = "") -> list[Alarm]:
        """Add ``readings`` to the machine's windows, score those completed, feed its alarm in order.
        Everything is checked before the machine's state changes: a refused message leaves no trace."""
        readings = sorted(readings, key=lambda r: r.t)  # a batch sent out of order still counts whole
        values = np.array([self._row(r) for r in readings], np.float64)
        if (np.abs(np.nan_to_num(values)) > MAX_ABS_READING).any():
            raise InvalidInput(f"a reading is out of range (beyond ±{MAX_ABS_READING:g})")
        if readings[-1].t > self.clock() + MAX_CLOCK_AHEAD_S:
            raise InvalidInput("a reading is timed in the future: check the device's clock")
        rows = values.astype(np.float32)
        series = self._series_of(machine, device)
        windows, raw, ends, taken, taken_rows = [], [], [], [], []
        for row, reading in zip(rows, readings, strict=True):
            if reading.t <= series.last_t:
                continue  # already taken: QoS 1 delivers a message again after a reconnect
            taken.append(reading.t)
            taken_rows.append(row.tolist())
            series.after_gap(reading.t, self.scorer.spec.window)
            series.last_t = reading.t
            filled = np.where(np.isnan(row), series.last, row)
            series.last = filled
            if np.isnan(filled).any():
                continue  # a sensor not heard from yet: no window can hold it
            series.rows.append(filled)
            series.raw.append(row)
            series.since += 1
            if len(series.rows) == series.rows.maxlen and series.since >= self.scorer.spec.stride:
                series.since = 0
                windows.append(np.stack(series.rows))
                raw.append(np.stack(series.raw))
                ends.append(reading.t)
        self._record(machine, taken, taken_rows)
        return self._judge(machine, windows, raw, ends, series)

    def _record(self, machine: str, times: list[float], rows: list[list[float]]) -> None:
        """Readings are kept for the core besides being scored; a full disk costs the core them,
        not the scoring."""
        if self.recorder is None or not times:
            return
        try:
            self.recorder.record(machine, self.scorer.spec.sensors, times, rows)
        except OSError as exc:
            log.warning("machine %s: %d readings not kept for the core: %s", machine, len(times), exc)

    @property
    def max_machines(self) -> int:
        spec = self.scorer.spec
        per_machine = spec.window * len(spec.sensors) * 4 * 2 + 4096  # two windows of float32, and the rest
        return max(1, min(self.alarms.max_machines, MEMORY_BUDGET // per_machine))

    def _series_of(self, machine: str, device: str) -> _Series:
        series = self._series.get(machine)
        if series is None:
            if len(self._series) >= self.max_machines:
                raise InvalidInput(f"more than {self.max_machines} machines at one edge")
            if sum(1 for s in self._series.values() if s.device == device) >= MACHINES_PER_DEVICE:
                raise InvalidInput(f"device reports more than {MACHINES_PER_DEVICE} machines")
            window = self.scorer.spec.window
            nan = np.full(len(self.scorer.spec.sensors), np.nan, np.float32)
            series = self._series[machine] = _Series(deque(maxlen=window), deque(maxlen=window), nan, device)
        elif series.device != device:
            raise Forbidden(f"machine {machine} reports through another device")
        return series

    def _judge(
        self, machine: str, windows: list[Array], raw: list[Array], ends: list[float], series: _Series
    ) -> list[Alarm]:
        if not windows:
            return []
        x = np.stack(windows)
        errors = self.scorer.errors(x)
        distances = self.scorer.texture_distances(np.stack(raw))
        flags = self.scorer.spec.flags(errors, distances)
        self.metrics.scored(machine, len(x), int(flags.sum()))
        raised = []
        spec = self.scorer.spec
        behind = (spec.window - 1 + (self.alarms.n - 1) * spec.stride) * series.step
        for i, (window, end, error, flag) in enumerate(zip(x, ends, errors, flags, strict=True)):
            if flag:
                series.flagged_until = end
            change = self.alarms.observe(machine, bool(flag), float(error))
            if change is None:
                continue
            self.metrics.alarm(machine, change.raised)
            if change.raised:
                texture = float(distances[i]) if distances is not None else None
                alarm = Alarm(
                    change,
                    window,
                    datetime.fromtimestamp(end, UTC),
                    texture,
                    datetime.fromtimestamp(end - behind, UTC),
                )
                self.sink.raised(alarm)
                raised.append(alarm)
            else:
                log.info("machine %s: alarm cleared", machine)
                until = series.flagged_until
                self.sink.cleared(
                    machine,
                    datetime.fromtimestamp(end, UTC),
                    None if until is None else datetime.fromtimestamp(until, UTC),
                )
        return raised

    def _row(self, reading: Reading) -> npt.NDArray[np.float32]:
        sensors = self.scorer.spec.sensors
        if not set(reading.values) <= set(sensors):
            raise InvalidInput(f"readings name sensors this model does not read; it reads {list(sensors)}")
        return np.array([np.nan if reading.values.get(s) is None else reading.values[s] for s in sensors])


def _parse(payload: bytes) -> Message:
    try:
        return Message.model_validate_json(payload)
    except ValidationError as exc:
        raise InvalidInput(f"readings refused at {validation_reason(exc, (Message, Reading))}") from exc
