"""One demo run's private world: the core's names and ports, and a site of its own for each store.

Each run gets its own names (``edgecore-d<stamp>-…``), so a demo can be re-run on
the same stack without old datasets, ledgers or consumer offsets leaking into it,
and what it leaves behind can be inspected afterwards (notebooks, ``edges status``).
Each store is a separate site (``edgecore.stack.site``): its own MinIO process, its own
credentials, enrolled at the core's front door like a real store; the core's settings
hold nothing of a store's storage.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecore.enrolment import enrol
from edgecore.stack.site import ENROLMENT_FILE, EdgeSite
from edgecore.stack.tools import free_port
from foundation.errors import InvalidInput
from foundation.layout import edge_model_name
from foundation.settings import Settings
from foundation.storage.store import ObjectStore

PLC = "plc-1"
"""The device that publishes each store's machine readings."""


@dataclass(frozen=True)
class EdgePorts:
    gateway: int
    server: int
    sync_metrics: int


@dataclass(frozen=True)
class World:
    run_id: str
    settings: Settings
    """The core's: its storage, topics, front door and listener."""
    edges: dict[str, EdgePorts]
    sites: dict[str, EdgeSite]

    @classmethod
    def create(cls, base: Settings, edges: list[str], coalesce_s: float, poll_s: float) -> World:
        run_id = "d" + time.strftime("%y%m%d%H%M%S") + secrets.token_hex(2)
        door_port = free_port()
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
                "topic_anomaly_detected": f"edgecore.{run_id}.anomaly-detected",
            },
            door={"port": door_port, "url": f"https://127.0.0.1:{door_port}"},
            # the stack's CA and certificate, not the run's folder
            tls={"ca_file": base.ca_file, "cert_file": base.cert_file, "key_file": base.key_file},
            listener={"metrics_port": free_port(), "coalesce_s": coalesce_s},
            console={"port": free_port()},
            delivery={"poll_s": poll_s},
        )
        ports = {edge: EdgePorts(free_port(), free_port(), free_port()) for edge in edges}
        sites = {edge: EdgeSite(settings, edge) for edge in edges}
        return cls(run_id, settings, ports, sites)

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    def server_url(self, edge: str) -> str:
        return f"http://127.0.0.1:{self.edges[edge].server}"

    def gateway_url(self, edge: str) -> str:
        return f"http://127.0.0.1:{self.edges[edge].gateway}"

    @property
    def core_page_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.console.port}/core/"

    @property
    def operator_token_file(self) -> Path:
        return self.state_dir / "console" / "tokens" / "demo-operator"

    def pages(self) -> list[str]:
        """Where people look: the core's page and each store's, and where their tokens are."""
        lines = [f"core page {self.core_page_url} (operator token in {self.operator_token_file})"]
        for edge, site in self.sites.items():
            _, staff = site.settings.gateway_tokens_files(edge)
            lines.append(f"{edge} page {self.gateway_url(edge)}/staff/ (staff tokens in {staff})")
        return lines

    def probes_dir(self, edge: str) -> Path:
        return self.sites[edge].folder / "probes"

    def model(self, edge: str) -> str:
        return edge_model_name(edge)

    def env(self, **changes: Any) -> dict[str, str]:
        """The core's settings (with ``changes``, as ``Settings.updated`` takes them) as ``EDGECORE_*``."""
        return self.settings.updated(**changes).environment()

    def fleet(self, edge: str) -> list[dict[str, Any]]:
        """A store's controller fleet file: its own model server, checked with probe images."""
        target = {"kind": "local", "url": self.server_url(edge), "probes": str(self.probes_dir(edge))}
        return [{"edge": edge, "target": target}]

    def write_fleets(self) -> None:
        for edge, site in self.sites.items():
            path = site.settings.fleet_file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.fleet(edge), indent=2))

    def open_site(self, edge: str) -> tuple[str, str, str]:
        """The store's own MinIO and broker, its enrolment at the core; its gateway's tokens of the
        kiosk camera, the machines' PLC and the store's manager."""
        site = self.sites[edge]
        site.up()
        if site.mosquitto.process.pid() is None:
            raise InvalidInput("the demo's machines need Mosquitto: run `edgecore stack install`")
        enrol(self.settings, edge, site.folder / ENROLMENT_FILE)
        site.refresh()
        camera = site.issue_gateway_token("device", "kiosk-camera")
        plc = site.issue_gateway_token("device", PLC)
        return camera, plc, site.issue_gateway_token("staff", "store-manager")

    def site_store(self, edge: str) -> ObjectStore:
        """The store's own storage, with the store's credentials (the core has none)."""
        return ObjectStore(self.sites[edge].settings.s3)
