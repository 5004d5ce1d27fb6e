"""Machine telemetry for the anomaly use case: normal operation, and faults injected and labelled.

No real plant data can be downloaded here, so the sensor use case trains and is tested on
this: one machine's temperature, vibration RMS, motor current and pressure, every
``period_s``, with what makes real telemetry hard: duty cycles (the machine runs, then
idles), a daily pattern, noise, slow sensor drift and missing readings.  Faults of five
kinds are injected into running periods and labelled sample by sample, so a detector can
be scored on them.  The same seed gives the same series.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from foundation.telemetry import FAULT_KINDS, SENSORS, Fault, Telemetry

DAY_S = 86_400.0

# Where each fault kind shows first: a kind's sensor, unless a fault names another.
FAULT_SENSOR = {
    "spike": "temperature_c",
    "level_shift": "current_a",
    "stuck": "pressure_bar",
    "frequency_change": "pressure_bar",
    "degradation": "vibration_mm_s",
}


def generate(
    machine: str,
    hours: float,
    seed: int,
    faults: int | Sequence[tuple[str, float, float]] = 0,
    period_s: float = 10.0,
    missing_rate: float = 0.002,
    start: float = 1_767_225_600.0,
    washes: Sequence[float] = (),
) -> Telemetry:
    """``hours`` of one machine's telemetry.

    ``faults``: how many to inject at random (kinds in turn, in the second half), or explicit
    ``(kind, start_hour, duration_hours)``.  ``missing_rate``: share of readings lost, half
    one by one and half in short gaps.  ``washes``: hours at which a cleaning cycle starts,
    normal operation that a model trained without one has never seen (``_wash``).
    """
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 / period_s)
    if n < 10:
        raise ValueError(f"{hours} h at one reading every {period_s} s is under 10 readings")
    t = start + period_s * np.arange(n)
    running = _duty_cycle(rng, n, period_s)
    values = _normal(rng, t, running, period_s)
    for hour in washes:
        _wash(rng, values, int(hour * 3600 / period_s), period_s)
    planned = _plan(rng, faults, n, period_s, running)
    for fault in planned:
        _inject(rng, values, fault, t, period_s)
    labels = np.zeros(n, dtype=np.int8)
    for fault in planned:
        labels[fault.start : fault.end] = fault.label
    _lose(rng, values, missing_rate)
    return Telemetry(machine, start, period_s, values, labels, tuple(planned))


def _duty_cycle(rng: np.random.Generator, n: int, period_s: float) -> np.ndarray:
    """Runs of 40–90 minutes, then idle for 5–20."""
    running = np.zeros(n, dtype=bool)
    i, on = 0, bool(rng.random() < 0.8)
    while i < n:
        minutes = rng.uniform(40, 90) if on else rng.uniform(5, 20)
        length = max(1, int(minutes * 60 / period_s))
        running[i : i + length] = on
        i, on = i + length, not on
    return running


def _lag(target: np.ndarray, period_s: float, tau_s: float, first: float) -> np.ndarray:
    """A first-order lag: how a motor's temperature follows its load."""
    alpha = 1.0 - np.exp(-period_s / tau_s)
    out = np.empty_like(target)
    level = first
    for i, goal in enumerate(target):
        level += alpha * (goal - level)
        out[i] = level
    return out


def _normal(rng: np.random.Generator, t: np.ndarray, running: np.ndarray, period_s: float) -> np.ndarray:
    n = len(t)
    days = (t - t[0]) / DAY_S
    ambient = 22.0 + 3.0 * np.sin(2 * np.pi * (t % DAY_S) / DAY_S - np.pi / 2)
    drift = rng.uniform(-0.5, 0.5)  # °C per day: the temperature sensor's calibration creeps
    heat = _lag(np.where(running, 30.0, 0.0), period_s, tau_s=900.0, first=0.0)
    temperature = ambient + heat + drift * days + rng.normal(0, 0.3, n)
    vibration = np.where(running, 2.5 + rng.normal(0, 0.15, n), 0.2 + np.abs(rng.normal(0, 0.05, n)))
    load = np.convolve(rng.normal(0, 1, n), np.ones(30) / 30, mode="same") * 3
    current = np.where(running, 12.0 + load + rng.normal(0, 0.2, n), 0.5 + rng.normal(0, 0.05, n))
    pump = 0.4 * np.sin(2 * np.pi * (t - t[0]) / 120.0)  # the pump's 2-minute pressure pulsation
    pressure = np.where(running, 6.0 + pump, 1.0) + rng.uniform(-0.05, 0.05) * days + rng.normal(0, 0.05, n)
    return np.column_stack([temperature, vibration, current, pressure]).astype(np.float64)


WASH_S = 900.0


def _wash(rng: np.random.Generator, values: np.ndarray, first: int, period_s: float) -> None:
    """A 15-minute clean-in-place: the motor stops and the pump flushes at a steady 3.5 bar, drawing 4 A."""
    window = slice(first, min(len(values), first + int(WASH_S / period_s)))
    n = len(values[window])
    if n == 0:
        raise ValueError("a wash starts outside the series")
    values[window, SENSORS.index("vibration_mm_s")] = 0.9 + rng.normal(0, 0.05, n)
    values[window, SENSORS.index("current_a")] = 4.0 + rng.normal(0, 0.1, n)
    values[window, SENSORS.index("pressure_bar")] = 3.5 + rng.normal(0, 0.03, n)


def _plan(
    rng: np.random.Generator,
    faults: int | Sequence[tuple[str, float, float]],
    n: int,
    period_s: float,
    running: np.ndarray,
) -> list[Fault]:
    per_hour = 3600.0 / period_s
    if not isinstance(faults, int):
        planned = []
        for kind, start_h, duration_h in faults:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}: one of {', '.join(FAULT_KINDS)}")
            first = int(start_h * per_hour)
            last = min(n, first + max(1, int(duration_h * per_hour)))
            if not 0 <= first < n:
                raise ValueError(f"fault {kind} starts at hour {start_h}, outside the series")
            planned.append(Fault(kind, FAULT_SENSOR[kind], first, last))
        return sorted(planned, key=lambda f: f.start)
    # random ones: in turn by kind, each in its own slice of the second half, starting while running
    planned, half = [], n // 2
    slices = np.linspace(half, n, faults + 1).astype(int)
    for k in range(faults):
        kind = FAULT_KINDS[k % len(FAULT_KINDS)]
        lo, hi = int(slices[k]), int(slices[k + 1])
        length = 3 if kind == "spike" else max(6, int((hi - lo) * rng.uniform(0.2, 0.5)))
        candidates = np.flatnonzero(running[lo : max(lo + 1, hi - length)]) + lo
        first = int(rng.choice(candidates)) if len(candidates) else lo
        planned.append(Fault(kind, FAULT_SENSOR[kind], first, min(n, first + length)))
    return planned


def _inject(
    rng: np.random.Generator, values: np.ndarray, fault: Fault, t: np.ndarray, period_s: float
) -> None:
    j = SENSORS.index(fault.sensor)
    window = slice(fault.start, fault.end)
    length = fault.end - fault.start
    column = values[:, j]
    scale = float(np.std(column[: max(10, fault.start)])) or 1.0
    if fault.kind == "spike":
        column[window] += scale * rng.uniform(6, 10) * rng.choice([-1.0, 1.0])
    elif fault.kind == "level_shift":
        column[window] += max(2.0 * scale, 0.15 * abs(float(np.mean(column[window]))))
    elif fault.kind == "stuck":
        column[window] = column[fault.start]
    elif fault.kind == "frequency_change":  # the pulsation runs 2.5 times faster: a worn valve
        phase = 2 * np.pi * (t[window] - t[0])
        column[window] += 0.4 * (np.sin(phase / 48.0) - np.sin(phase / 120.0))
    elif fault.kind == "degradation":  # a bearing wearing out: vibration and heat grow together
        ramp = np.linspace(0.0, 1.0, length)
        column[window] += 3.75 * ramp
        values[window, SENSORS.index("temperature_c")] += 5.0 * ramp


def _lose(rng: np.random.Generator, values: np.ndarray, rate: float) -> None:
    """Readings lost one by one, and in gaps of 5–30 (a sensor bus that dropped out)."""
    n, sensors = values.shape
    if rate <= 0:
        return
    single = rng.random(values.shape) < rate / 2
    values[single] = np.nan
    gaps = rng.poisson(rate / 2 * n / 17.5)
    for _ in range(int(gaps)):
        first, length = int(rng.integers(0, n)), int(rng.integers(5, 31))
        values[first : first + length, int(rng.integers(0, sensors))] = np.nan
