"""One demo run's private world: buckets, topics, state, ports and tokens.

Each run gets its own names (``edgecore-d<stamp>-…``), so a demo can be re-run on
the same stack without old datasets, ledgers or consumer offsets leaking into it,
and what it leaves behind can be inspected afterwards (notebooks, ``edges status``).
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from foundation.layout import edge_model_name
from foundation.settings import Settings


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class EdgePorts:
    gateway: int
    server: int
    sync_metrics: int


@dataclass(frozen=True)
class World:
    run_id: str
    settings: Settings
    edges: dict[str, EdgePorts]
    tokens: dict[str, str]

    @classmethod
    def create(cls, base: Settings, edges: list[str], coalesce_s: float, poll_s: float) -> World:
        run_id = "d" + time.strftime("%y%m%d%H%M%S") + secrets.token_hex(2)
        receiver_port = free_port()
        tokens = {edge: secrets.token_urlsafe(24) for edge in edges}
        state = base.state_dir / "demo" / run_id
        settings = base.updated(
            state_dir=state,
            buckets={
                "training": f"edgecore-{run_id}-training",
                "models": f"edgecore-{run_id}-models",
                "edge_prefix": f"edgecore-{run_id}-edge-",
            },
            kafka={
                "topic_training_data_ready": f"edgecore.{run_id}.training-data-ready",
                "topic_model_published": f"edgecore.{run_id}.model-published",
                "topic_dead_letter": f"edgecore.{run_id}.dead-letter",
            },
            uplink={
                "receiver_port": receiver_port,
                "receiver_url": f"http://127.0.0.1:{receiver_port}",
                "edge_tokens": {edge: SecretStr(token) for edge, token in tokens.items()},
            },
            listener={"metrics_port": free_port(), "coalesce_s": coalesce_s},
            delivery={"poll_s": poll_s, "fleet_file": state / "edges.json"},
        )
        ports = {edge: EdgePorts(free_port(), free_port(), free_port()) for edge in edges}
        return cls(run_id, settings, ports, tokens)

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    def server_url(self, edge: str) -> str:
        return f"http://127.0.0.1:{self.edges[edge].server}"

    def gateway_url(self, edge: str) -> str:
        return f"http://127.0.0.1:{self.edges[edge].gateway}"

    def probes_dir(self, edge: str) -> Path:
        return self.state_dir / "probes" / edge

    def model(self, edge: str) -> str:
        return edge_model_name(edge)

    def env(self, **changes: Any) -> dict[str, str]:
        """The settings (with ``changes``, as ``Settings.updated`` takes them) as ``EDGECORE_*`` variables."""
        return self.settings.updated(**changes).environment()

    def fleet(self) -> list[dict[str, Any]]:
        """The controllers' fleet file: each edge's own model server, checked with probe images."""
        return [
            {
                "edge": edge,
                "target": {
                    "kind": "local",
                    "url": self.server_url(edge),
                    "probes": str(self.probes_dir(edge)),
                },
            }
            for edge in self.edges
        ]

    def write_fleet(self) -> Path:
        path = self.settings.delivery.fleet_file
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.fleet(), indent=2))
        return path
