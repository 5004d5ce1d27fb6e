"""The one settings object, grouped by concern.

Built once at an entry point (a CLI command, a server's main, a pipeline step) with
``Settings()`` and passed down; each component takes only its group (``settings.s3``,
``settings.kafka``, ``settings.uplink`` …), and nothing deeper reads ``os.environ``.
Every field is an ``EDGECORE_*`` environment variable (or a line of a ``.env`` file);
the defaults point at the local stack that ``edgecore stack up`` starts on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings

from foundation.images import MODELCAR_BASE_IMAGE
from foundation.settings.groups import (
    BucketSettings,
    ConsoleSettings,
    ImageSettings,
    KafkaSettings,
    KfpSettings,
    ListenerSettings,
    S3Settings,
    ServingSettings,
    group_config,
)
from foundation.settings.links import (
    DeliverySettings,
    DoorSettings,
    ModelcarSettings,
    TlsSettings,
    UplinkSettings,
)

_HOME = Path.home()
__all__ = [
    "BucketSettings",
    "ConsoleSettings",
    "DeliverySettings",
    "DoorSettings",
    "ImageSettings",
    "KafkaSettings",
    "KfpSettings",
    "ListenerSettings",
    "ModelcarSettings",
    "S3Settings",
    "ServingSettings",
    "Settings",
    "TlsSettings",
    "UplinkSettings",
    "env_name",
    "settings_reference",
]


_GROUPS: dict[str, type[BaseSettings]] = {
    "s3": S3Settings,
    "buckets": BucketSettings,
    "kafka": KafkaSettings,
    "images": ImageSettings,
    "serving": ServingSettings,
    "uplink": UplinkSettings,
    "delivery": DeliverySettings,
    "listener": ListenerSettings,
    "kfp": KfpSettings,
    "door": DoorSettings,
    "modelcar": ModelcarSettings,
    "tls": TlsSettings,
    "console": ConsoleSettings,
}


class Settings(BaseSettings):
    """Every group, and where this machine keeps state."""

    model_config = group_config()

    state_dir: Path = Field(
        default=_HOME / ".local" / "state" / "edgecore",
        description="Data, logs and pid files of the local stack, the edge outboxes, ledgers and caches.",
    )
    s3: S3Settings = Field(default_factory=S3Settings)
    buckets: BucketSettings = Field(default_factory=BucketSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    uplink: UplinkSettings = Field(default_factory=UplinkSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    listener: ListenerSettings = Field(default_factory=ListenerSettings)
    kfp: KfpSettings = Field(default_factory=KfpSettings)
    door: DoorSettings = Field(default_factory=DoorSettings)
    modelcar: ModelcarSettings = Field(default_factory=ModelcarSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    def updated(self, **changes: Any) -> Settings:
        """A copy with some fields changed: ``updated(state_dir=p, kafka={"port": 9192})``."""
        update: dict[str, Any] = {}
        for name, value in changes.items():
            current = getattr(self, name)
            if isinstance(value, dict):  # validated, as the environment would be
                value = type(current).model_validate({**current.model_dump(), **value})
            update[name] = value
        return self.model_copy(update=update)

    def with_environment(self, env: dict[str, str]) -> Settings:
        """A copy with the fields ``env`` names (``EDGECORE_*``, as :meth:`environment` writes them) set."""
        changes: dict[str, Any] = {}
        for name, group in _GROUPS.items():
            named = {
                field: env[env_name(group, field)]
                for field in group.model_fields
                if env_name(group, field) in env
            }
            if named:
                changes[name] = named
        updated = self.updated(**changes)
        if "EDGECORE_STATE_DIR" in env:
            updated = updated.model_copy(update={"state_dir": Path(env["EDGECORE_STATE_DIR"])})
        return updated

    def environment(self) -> dict[str, str]:
        """Every setting as its ``EDGECORE_*`` variable, for the processes this one starts (secrets too)."""
        env = {"EDGECORE_STATE_DIR": str(self.state_dir)}
        for name in _GROUPS:
            group: BaseModel = getattr(self, name)
            for field, value in group:
                if value is not None:
                    env[env_name(type(group), field)] = _as_env(value)
        return env

    @property
    def outbox_dir(self) -> Path:
        """The edges' durable outboxes (one SQLite file and one spool folder per edge)."""
        return self.state_dir / "outbox"

    @property
    def listener_dir(self) -> Path:
        """The listener launchers' requests and compiled pipelines (its ledger is in the training bucket)."""
        return self.state_dir / "listener"

    @property
    def tls_dir(self) -> Path:
        """The local stack's CA and certificates (``edgecore.stack.certificates``)."""
        return self.state_dir / "tls"

    @property
    def ca_file(self) -> Path:
        return self.tls.ca_file or self.tls_dir / "ca.pem"

    @property
    def cert_file(self) -> Path:
        return self.tls.cert_file or self.tls_dir / "server.pem"

    @property
    def key_file(self) -> Path:
        return self.tls.key_file or self.tls_dir / "server-key.pem"

    @property
    def operators_file(self) -> Path:
        return self.console.operators_file or self.state_dir / "console" / "operators.json"

    @property
    def door_tokens_file(self) -> Path:
        return self.door.tokens_file or self.state_dir / "door" / "tokens.json"

    def gateway_tokens_files(self, edge: str) -> tuple[Path, Path]:
        """(devices, staff) token files of an edge's gateway."""
        folder = self.state_dir / "gateway" / edge
        return (
            self.uplink.device_tokens_file or folder / "devices.json",
            self.uplink.staff_tokens_file or folder / "staff.json",
        )

    def modelcar_client(self) -> tuple[Path, Path, Path]:
        """(CA, certificate, key) the core reaches its registry with; the stack's client folder by default."""
        folder = self.state_dir / "registry" / "client"
        m = self.modelcar
        return (
            m.ca_file or folder / "ca.crt",
            m.cert_file or folder / "client.cert",
            m.key_file or folder / "client.key",
        )

    @property
    def modelcar_base(self) -> str:
        return self.modelcar.base or f"{self.modelcar.registry}/{MODELCAR_BASE_IMAGE.rpartition('/')[2]}"

    @property
    def fleet_file(self) -> Path:
        return self.delivery.fleet_file or self.state_dir / "edges.json"


def env_name(group: type[BaseModel], field: str) -> str:
    """The environment variable of one field of a group."""
    info = group.model_fields[field]
    if isinstance(info.validation_alias, str):
        return info.validation_alias
    prefix = str(group.model_config.get("env_prefix", ""))
    return (prefix + field).upper()


def _as_env(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return json.dumps(
            {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in value.items()}
        )
    return str(value)


def settings_reference(extra: dict[str, type[BaseModel]] | None = None) -> str:
    """A Markdown table of every setting (and of ``extra`` groups: the application's own)."""
    home = str(Path.home())
    rows = ["| environment variable | group | default | meaning |", "| --- | --- | --- | --- |"]
    state = Settings.model_fields["state_dir"]
    rows.append(
        f"| `EDGECORE_STATE_DIR` | — | `{str(state.default).replace(home, '~')}` | {state.description} |"
    )
    for name, group in {**_GROUPS, **(extra or {})}.items():
        for field, info in group.model_fields.items():
            if isinstance(info.default, SecretStr):
                shown = "(secret)"
            elif info.default_factory is not None:
                shown = "{}"
            elif info.default is None:
                shown = "—"
            else:
                shown = str(info.default).replace(home, "~")
            rows.append(f"| `{env_name(group, field)}` | `{name}` | `{shown}` | {info.description} |")
    return "\n".join(rows) + "\n"


def invalid_setting(exc: ValidationError) -> str:
    """What to fix, named by environment variable, for a settings object that did not validate.

    The value given is never repeated: it may be a secret.
    """
    groups: dict[str, type[BaseSettings]] = {cls.__name__: cls for cls in _GROUPS.values()}
    groups[Settings.__name__] = Settings
    model = groups.get(exc.title)
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        problems.append(f"{_variable(model, field)}: {error['msg']}")
    return "; ".join(problems) or str(exc.title)


def _variable(model: type[BaseSettings] | None, field: str) -> str:
    if model is None:
        return field
    info = model.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    return f"{model.model_config.get('env_prefix', 'EDGECORE_')}{field}".upper()
