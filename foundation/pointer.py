"""The serving pointer: which model version an edge predictor should serve.

The edge sync controller copies a published version into the edge bucket
(``Layout.edge_model_prefix``), then writes this pointer to
``Layout.edge_model_pointer(edge, model)`` and asks the predictor to reload with
``POST /v2/repository/models/<model>/load``.  The predictor reads the pointer, loads
and warms the version up beside the one it serves, and switches atomically.  Because
the pointer lives in the edge bucket, a predictor that restarts comes back on the same
version without being told again.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foundation.errors import InvalidInput
from foundation.layout import NAME_RE, VERSION_RE


class ModelPointer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(pattern=NAME_RE.pattern)
    version: str = Field(pattern=VERSION_RE.pattern)
    uri: str = Field(
        min_length=1,
        max_length=1024,
        description="s3:// prefix or local directory of the version (Layout.edge_model_prefix(...).uri).",
    )
    # What the edge sync controller reads back after a restart (the predictor ignores it):
    previous_version: str | None = Field(default=None, pattern=VERSION_RE.pattern)
    previous_uri: str | None = Field(default=None, min_length=1, max_length=1024)
    rejected_version: str | None = Field(
        default=None, pattern=VERSION_RE.pattern, description="Last version rolled back from; not retried."
    )
    pinned: bool = Field(default=False, description="An operator rolled back: not synced until unpinned.")
    synced_at: datetime | None = Field(
        default=None, description="When the controller confirmed this version answers; None mid-rollout."
    )

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> ModelPointer:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise InvalidInput(f"serving pointer {where} is invalid: {exc.errors()[0]['msg']}") from exc
