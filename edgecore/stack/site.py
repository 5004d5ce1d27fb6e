"""A store's own site on this machine: its MinIO and its MQTT broker, its credentials, nothing of the core's.

Stores are separate sites: each has its own object storage (its own MinIO process, port,
data folder and root credentials) and its own MQTT broker, and its processes (gateway,
shipper, sync controller, model server) hold only the store's credentials plus what
``edgecore core enrol`` issued it to reach the core's front door and Kafka listener.
The core holds no credential to any site.  Everything a site's processes need is its
``environment()`` (``EDGECORE_*``), built from ``<state>/sites/<edge>/site.json`` (the
ports and secrets made when the site was first set up) and ``edge.env`` (the enrolment).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from edgecore.stack.minio import MinioService
from edgecore.stack.mosquitto import BrokerAccess, MosquittoService
from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import free_port
from foundation.credentials import new_token, read_tokens_file, write_tokens_file
from foundation.layout import Layout, check_name
from foundation.settings import Settings
from foundation.storage.store import ObjectStore

SITE_FILE = "site.json"
ENROLMENT_FILE = "edge.env"


@dataclass(frozen=True)
class SitePlan:
    """What a site was given when first set up: its ports and its own secrets."""

    edge: str
    s3_port: int
    console_port: int
    mqtt_port: int
    s3_secret: str
    mqtt_password: str

    @classmethod
    def new(cls, edge: str) -> SitePlan:
        return cls(edge, free_port(), free_port(), free_port(), secrets.token_urlsafe(24), new_token())


def site_folder(core: Settings, edge: str) -> Path:
    return core.state_dir / "sites" / check_name(edge, "edge id")


class EdgeSite:
    """One store's MinIO and broker, and the settings of every process at that store."""

    def __init__(self, core: Settings, edge: str, stack: StackSettings | None = None) -> None:
        self.edge = check_name(edge, "edge id")
        self.folder = site_folder(core, edge)
        self.core = core
        self.plan = self._plan()
        self.settings = self._settings(core)
        stack = stack or StackSettings()
        self.minio = MinioService(self.settings, stack, console_port=self.plan.console_port, notify=False)
        devices, _ = self.settings.gateway_tokens_files(edge)
        access = BrokerAccess(edge, self.plan.mqtt_password, devices)
        self.mosquitto = MosquittoService(self.settings, stack, access)

    def up(self, mqtt: bool = True) -> None:
        """Start the site's MinIO (and broker, where mosquitto can be had); the store's bucket exists."""
        self.minio.start()
        ObjectStore(self.settings.s3).ensure_bucket(Layout(self.settings.buckets).edge_bucket(self.edge))
        if mqtt and self.mosquitto.binary() is not None:
            self.mosquitto.start()

    def refresh(self) -> None:
        """Read the enrolment again (after ``edgecore core enrol`` wrote it)."""
        self.settings = self._settings(self.core)

    def down(self) -> list[str]:
        return [svc.name for svc in (self.mosquitto, self.minio) if svc.process.stop()]

    def environment(self, **changes: Any) -> dict[str, str]:
        """``EDGECORE_*`` for the store's processes: its own storage and broker, its enrolment
        (``changes`` as ``Settings.updated`` takes them)."""
        return self.settings.updated(**changes).environment()

    def issue_gateway_token(self, kind: Literal["device", "staff"], principal: str) -> str:
        """A new token for a device or a member of staff, added to the gateway's file (read on change)."""
        devices, staff = self.settings.gateway_tokens_files(self.edge)
        path = devices if kind == "device" else staff
        tokens = read_tokens_file(path)
        token = new_token()
        tokens[check_name(principal, f"{kind} id")] = [*tokens.get(principal, [])[-1:], token]
        write_tokens_file(path, tokens)
        if kind == "device" and self.mosquitto.process.pid() is not None:
            self.mosquitto.reload_access()  # the device may publish over MQTT with it too
        return token

    def _plan(self) -> SitePlan:
        path = self.folder / SITE_FILE
        if path.exists():
            return SitePlan(**json.loads(path.read_text()))
        plan = SitePlan.new(self.edge)
        self.folder.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(json.dumps(asdict(plan), indent=2))
        return plan

    def _settings(self, core: Settings) -> Settings:
        """Only the store's own: the core's storage credentials are not carried over."""
        plan = self.plan
        site = Settings(state_dir=self.folder).updated(
            s3={
                "host": core.s3.host,
                "port": plan.s3_port,
                "endpoint": None,
                "access_key": f"site-{self.edge}",
                "secret_key": plan.s3_secret,
            },
            buckets=core.buckets.model_dump(),
            uplink={
                "mqtt_host": core.uplink.mqtt_host,
                "mqtt_port": plan.mqtt_port,
                "mqtt_password": plan.mqtt_password,
                "max_image_bytes": core.uplink.max_image_bytes,
            },
            door={"url": core.door.url},
            tls={"ca_file": core.ca_file},
        )
        enrolment = self.folder / ENROLMENT_FILE
        if enrolment.exists():
            site = site.with_environment(read_env_file(enrolment))
        return site


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines (as ``edgecore core enrol`` writes them)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value
    return values
