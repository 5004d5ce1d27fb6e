"""Staff's verdicts on machine alarms: the contract between a store's alarm page and the core's training.

An alarm is raised by K of a machine's last N windows, so a verdict names the span of
readings behind it (from the first reading of the earliest of those windows to the end of
its last anomalous window, or of the window that raised it while it still stands), not one
window.  The readings themselves reach the core in
telemetry batches (``edge_sync.uplink.telemetry_batches``); a verdict only says what they
were.  Confirmed: a real fault, of a kind the edge cannot name (``CONFIRMED``).  Dismissed:
the machine was behaving normally, so the next model must not raise the alarm again
(``components.sensor_steps``).  A window judged twice (an edge that died between queueing a
verdict and recording it) counts once: the later verdict.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from foundation.errors import InvalidInput, validation_reason
from foundation.layout import IMAGE_ID_RE, NAME_RE
from foundation.telemetry import CONFIRMED, Telemetry

VERDICTS_DIR = "verdicts"
"""Where a telemetry dataset version keeps the verdicts it carries (``verdicts/<sha256>.json``)."""
MAX_VERDICTS = 1000
"""Verdicts one batch carries (a gateway sends each on its own, as staff give it; the listener's
coalescing window puts close ones into one round), and a body the door reads whole."""
MAX_SPAN_S = 6 * 3600.0
"""The longest span a verdict covers: an alarm anomalous for longer is judged on its first six hours."""


class AlarmVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    machine: str = Field(pattern=NAME_RE.pattern)
    window_id: str = Field(pattern=IMAGE_ID_RE.pattern)
    start: float = Field(ge=0, allow_inf_nan=False)
    """Epoch seconds of the first reading behind the alarm."""
    end: float = Field(ge=0, allow_inf_nan=False)
    """Epoch seconds of the last reading of its last anomalous window."""
    verdict: Literal["confirmed", "dismissed"]
    at: AwareDatetime
    """When staff gave it: of two on one window, the later counts."""

    @model_validator(mode="after")
    def _span(self) -> AlarmVerdict:
        if not 0 < self.end - self.start <= MAX_SPAN_S:
            raise ValueError(f"a verdict's span runs forward, {MAX_SPAN_S:g} s at most")
        return self


class VerdictBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verdicts: list[AlarmVerdict] = Field(min_length=1, max_length=MAX_VERDICTS)


def read_verdicts(body: bytes) -> list[AlarmVerdict]:
    """A batch of verdicts as the door and the pipeline read it; refusals quote nothing of it."""
    try:
        return VerdictBatch.model_validate_json(body).verdicts
    except ValidationError as exc:
        raise InvalidInput(
            f"verdicts refused at {validation_reason(exc, (VerdictBatch, AlarmVerdict))}"
        ) from exc


def latest(verdicts: Iterable[AlarmVerdict]) -> list[AlarmVerdict]:
    """One verdict per alarm window: the last given."""
    chosen: dict[tuple[str, str], AlarmVerdict] = {}
    for one in verdicts:
        key = (one.machine, one.window_id)
        if key not in chosen or one.at >= chosen[key].at:
            chosen[key] = one
    return sorted(chosen.values(), key=lambda v: (v.machine, v.start))


def label_by_verdicts(series: Telemetry, verdicts: list[AlarmVerdict]) -> tuple[np.ndarray, np.ndarray]:
    """The series' labels with confirmed spans marked ``CONFIRMED`` (a known fault's label stays),
    and which of its readings lie in a dismissed span."""
    labels = series.labels.copy()
    dismissed = np.zeros(len(labels), dtype=bool)
    times = series.times
    slack = series.period_s / 2  # the edge's clock of a span and the core's of a run differ by rounding
    for one in verdicts:
        if one.machine != series.machine:
            continue
        inside = (times >= one.start - slack) & (times <= one.end + slack)
        if one.verdict == "confirmed":
            labels[inside & (labels == 0)] = CONFIRMED
        else:
            dismissed |= inside
    return labels, dismissed
