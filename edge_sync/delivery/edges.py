"""Which edges a controller fleet serves, and where each edge's predictor lives.

The fleet file is a JSON list of :class:`EdgeSpec`; it is the only place that says
"edge X is served by InferenceService Y in kubeconfig context Z" or "by the model server
at URL U", so adding a store is one entry, not a code change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from foundation.errors import InvalidInput, NotFound
from foundation.layout import NAME_RE, edge_model_name

Name = Annotated[str, Field(pattern=NAME_RE.pattern)]


class KServeSpec(BaseModel):
    """A KServe InferenceService in the edge cluster reached through a kubeconfig context."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["kserve"] = "kserve"
    context: str = Field(min_length=1, max_length=253)
    kubeconfig: Path | None = None
    namespace: Name
    name: Name
    canary_percent: int = Field(
        default=0, ge=0, le=99, description="0: no canary, promote at once (KServe Serverless mode only)."
    )
    confirm_through_address: bool | None = Field(
        default=None,
        description="Confirm each rollout through the predictor at status.address.url (its versioned ready "
        "and infer routes). Unset: on for the in-cluster context, off for a controller outside the cluster, "
        "which cannot reach that address (it then trusts Ready alone, which can be stale).",
    )


class LocalSpec(BaseModel):
    """The edge's own model server, driven over HTTP through its repository API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local"] = "local"
    url: str = Field(pattern=r"^https?://[^\s/]+(/.*)?$")
    probes: Path = Field(description="Probe images <dir>/<SKU>/<image>; each should be predicted as <SKU>.")
    probe_accuracy: float = Field(
        default=0.9,
        ge=0.5,
        le=1.0,
        description="Share of probe images a new version must get right; a 95 %-accurate model misses some.",
    )


class GitOpsSpec(BaseModel):
    """An edge served through the fleet git repository Argo CD renders onto its cluster: rollouts
    and rollbacks are commits (``targets/gitops.py``); health is read from the InferenceService."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["gitops"] = "gitops"
    repo: str = Field(min_length=1, max_length=2048, description="Any URL or path git clones and pushes to.")
    branch: str = Field(default="main", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$", max_length=255)
    path: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)*$",
        max_length=255,
        description="The edge's folder in the repository; unset: edges/<edge>.",
    )
    author_name: str = Field(default="edgecore sync controller", min_length=1, max_length=200)
    author_email: str = Field(default="edge-sync@edgecore.invalid", pattern=r"^[^\s<>@]+@[^\s<>@]+$")
    context: str = Field(min_length=1, max_length=253)
    kubeconfig: Path | None = None
    namespace: Name
    name: Name
    confirm_through_address: bool | None = Field(
        default=None, description="As for KServeSpec: unset means on for the in-cluster context only."
    )

    def folder(self, edge: str) -> str:
        return self.path or f"edges/{edge}"


class EdgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    edge: Name
    model: Name | None = None
    target: Annotated[KServeSpec | LocalSpec | GitOpsSpec, Field(discriminator="kind")]
    wave: int = Field(
        default=0,
        ge=0,
        le=99,
        description="Rollout wave: a release reaches this edge once every earlier wave has baked it "
        "(edge_sync.delivery.waves).",
    )

    @property
    def model_name(self) -> str:
        return self.model or edge_model_name(self.edge)


_FLEET = TypeAdapter(list[EdgeSpec])


def load_fleet(path: Path) -> list[EdgeSpec]:
    if not path.is_file():
        raise NotFound(f"fleet file {path} does not exist: write a JSON list of edges and targets")
    try:
        specs = _FLEET.validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"fleet file {path}: {where}: {first['msg']}") from exc
    edges = [s.edge for s in specs]
    if len(edges) != len(set(edges)):
        raise InvalidInput(f"fleet file {path}: an edge is listed twice")
    return specs


def dump_fleet(specs: list[EdgeSpec], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([s.model_dump(mode="json", exclude_none=True) for s in specs], indent=2))
