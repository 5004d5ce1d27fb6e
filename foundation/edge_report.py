"""What an edge tells the core about itself: the version it serves, and how its predictor fares.

Stores sit behind NAT, so the core cannot ask them; each edge's sync controller sends a
report through the front door every few minutes instead (``edge_sync.delivery.reporter``),
and the door keeps the newest one per edge (``Layout.edge_report``) for the core's page.
A report carries the recent series itself (one point per interval, the newest last), so
the core stores one small object per edge, not one per interval, and a report lost on
the way costs nothing: the next one carries its points.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foundation.errors import InvalidInput, PayloadTooLarge, validation_reason
from foundation.layout import NAME_RE, VERSION_RE

MAX_POINTS = 288
"""A day of five-minute intervals."""
MAX_REPORT_BYTES = 128 * 1024
"""Room for a full series (``MAX_POINTS``) with margin; a larger body is not a report."""

Name = Annotated[str, Field(pattern=NAME_RE.pattern)]
Version = Annotated[str, Field(pattern=VERSION_RE.pattern)]
Millis = Annotated[float, Field(ge=0, le=3_600_000)]
Count = Annotated[int, Field(ge=0, le=10**12)]


class ReportPoint(BaseModel):
    """One interval of the edge's predictor: what it answered and how fast."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: datetime
    """The interval's end (the edge's clock)."""
    seconds: float = Field(gt=0, le=86_400)
    predictions: Count
    unsure: Count
    errors: Count
    p50_ms: Millis | None = None
    p95_ms: Millis | None = None
    p99_ms: Millis | None = None
    """Latency percentiles of the interval's predictions; None when there were none."""

    @property
    def unsure_rate(self) -> float | None:
        return self.unsure / self.predictions if self.predictions else None


class EdgeReport(BaseModel):
    """An edge's newest word on its model: read back from its target, so it is what the store serves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    edge: Name
    model: Name
    at: datetime
    serving: Version | None = None
    confirmed: bool = False
    """The serving version's rollout was confirmed healthy (False while one is under way)."""
    previous: Version | None = None
    rejected: Version | None = None
    pinned: bool = False
    """An operator rolled the edge back: it stays there until unpinned."""
    points: list[ReportPoint] = Field(default_factory=list, max_length=MAX_POINTS)
    received: datetime | None = None
    """Set by the front door (the core's clock): how stale the report is, whatever the edge's clock says."""

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> EdgeReport:
        if len(raw) > MAX_REPORT_BYTES:
            raise PayloadTooLarge(f"report {where} is over {MAX_REPORT_BYTES} bytes")
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            reason = validation_reason(exc, (EdgeReport, ReportPoint))
            raise InvalidInput(f"report {where} is invalid at {reason}") from exc
