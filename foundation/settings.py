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

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_HOME = Path.home()


def _group(prefix: str = "EDGECORE_") -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix, env_file=".env", extra="ignore", frozen=True, populate_by_name=True
    )


class S3Settings(BaseSettings):
    """The S3 endpoint (MinIO locally) and its credentials."""

    model_config = _group("EDGECORE_S3_")

    host: str = Field(default="127.0.0.1", description="Address MinIO listens on.")
    port: int = Field(default=9000, description="MinIO S3 API port.", ge=1, le=65535)
    endpoint: str | None = Field(
        default=None, description="S3 endpoint URL; defaults to http://<s3_host>:<s3_port> (the local MinIO)."
    )
    region: str = Field(default="us-east-1", description="S3 region name sent to the endpoint.")
    access_key: str = Field(default="edgecore", description="S3 access key (MinIO root user locally).")
    secret_key: SecretStr = Field(
        default=SecretStr("edgecore-local-secret"), description="S3 secret key (MinIO root password locally)."
    )
    multipart_threshold_mb: int = Field(
        default=8, ge=5, description="Objects at least this big are uploaded in multipart chunks."
    )
    multipart_chunk_mb: int = Field(default=8, ge=5, description="Multipart chunk size.")

    @property
    def endpoint_url(self) -> str:
        return self.endpoint or f"http://{self.host}:{self.port}"


class BucketSettings(BaseSettings):
    """Which buckets hold what (``foundation.layout`` builds every key inside them)."""

    model_config = _group()

    training: str = Field(
        default="edgecore-training",
        validation_alias="EDGECORE_TRAINING_BUCKET",
        description="Core bucket holding immutable training datasets.",
    )
    models: str = Field(
        default="edgecore-models",
        validation_alias="EDGECORE_MODELS_BUCKET",
        description="Core bucket holding the model registry.",
    )
    edge_prefix: str = Field(
        default="edgecore-edge-",
        validation_alias="EDGECORE_EDGE_BUCKET_PREFIX",
        description="Each edge's own bucket is this prefix plus the edge id.",
    )


class KafkaSettings(BaseSettings):
    """The Kafka brokers, edgecore's topics and the bound on one record."""

    model_config = _group("EDGECORE_KAFKA_")

    host: str = Field(default="127.0.0.1", description="Address the Kafka broker listens on.")
    port: int = Field(default=9092, description="Kafka client (PLAINTEXT) port.", ge=1, le=65535)
    bootstrap: str | None = Field(
        default=None,
        description="Bootstrap servers; defaults to <kafka_host>:<kafka_port> (the local broker).",
    )
    topic_training_data_ready: str = Field(
        default="edgecore.training-data-ready",
        validation_alias="EDGECORE_TOPIC_TRAINING_DATA_READY",
        description="Topic of `training-data-ready` events.",
    )
    topic_model_published: str = Field(
        default="edgecore.model-published",
        validation_alias="EDGECORE_TOPIC_MODEL_PUBLISHED",
        description="Topic of `model-published` events.",
    )
    topic_dead_letter: str = Field(
        default="edgecore.dead-letter",
        validation_alias="EDGECORE_TOPIC_DEAD_LETTER",
        description="Where malformed records go, with the reason and the original bytes.",
    )
    topic_s3_events: str = Field(
        default="edgecore.s3-events",
        validation_alias="EDGECORE_TOPIC_S3_EVENTS",
        description="Topic MinIO publishes its bucket notifications to.",
    )
    topic_smoke: str = Field(
        default="edgecore.smoke",
        validation_alias="EDGECORE_TOPIC_SMOKE",
        description="Where `edgecore stack smoke` sends its test event (no service reads it).",
    )
    partitions: int = Field(
        default=3, ge=1, validation_alias="EDGECORE_TOPIC_PARTITIONS", description="Partitions of each topic."
    )
    retention_hours: int = Field(
        default=168,
        ge=1,
        validation_alias="EDGECORE_TOPIC_RETENTION_HOURS",
        description="Retention of each topic.",
    )
    max_event_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        validation_alias="EDGECORE_MAX_EVENT_BYTES",
        description="Largest Kafka record edgecore accepts or produces.",
    )

    @property
    def bootstrap_servers(self) -> str:
        return self.bootstrap or f"{self.host}:{self.port}"

    @property
    def topics(self) -> list[str]:
        return [
            self.topic_training_data_ready,
            self.topic_model_published,
            self.topic_dead_letter,
            self.topic_s3_events,
            self.topic_smoke,
        ]


class ImageSettings(BaseSettings):
    """What training and serving agree on about images (``foundation.preprocessing``)."""

    model_config = _group("EDGECORE_IMAGE_")

    size: int = Field(
        default=64,
        ge=32,
        le=1024,
        description="Side of the square model input, shared by training and serving.",
    )
    max_pixels: int = Field(
        default=40_000_000,
        ge=1,
        validation_alias="EDGECORE_MAX_IMAGE_PIXELS",
        description="Largest declared image area decoded (decompression-bomb guard).",
    )


class ServingSettings(BaseSettings):
    """The edge model server."""

    model_config = _group()

    confidence_threshold: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="Versions without an open-set calibration: a photo is kept as a hard example when its "
        "top-1 probability is not above this (1: every photo).",
    )
    max_request_bytes: int = Field(
        default=8 * 1_048_576, ge=1024, description="Largest inference body accepted (HTTP 413 above)."
    )


class UplinkSettings(BaseSettings):
    """Edge to core: the gateway, its MQTT intake and shipper at the edge, the receiver at the core."""

    model_config = _group()

    gateway_port: int = Field(
        default=8081, description="Port of an edge's device/kiosk gateway.", ge=1, le=65535
    )
    mqtt_host: str = Field(default="127.0.0.1", description="MQTT broker that devices publish images to.")
    mqtt_port: int = Field(
        default=1883, description="Port of that broker (Mosquitto locally).", ge=1, le=65535
    )
    receiver_port: int = Field(
        default=8082, description="Port of the core receiver of edge sets.", ge=1, le=65535
    )
    receiver_url: str = Field(
        default="http://127.0.0.1:8082", description="Where an edge's shipper sends its sets."
    )
    edge_token: SecretStr = Field(
        default=SecretStr(""), description="This edge's bearer token for the core receiver."
    )
    edge_tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description="Receiver side: edge id -> bearer token (a JSON object)."
    )
    edge_tokens_file: Path | None = Field(
        default=None, description="Receiver side: a JSON file {edge id: token}, merged with edge_tokens."
    )
    max_image_bytes: int = Field(
        default=8 * 1_048_576, ge=1024, description="Largest single image a device may post (HTTP 413 above)."
    )
    max_set_members: int = Field(default=20_000, ge=1, description="Most files one shipped set may hold.")
    max_member_bytes: int = Field(
        default=16 * 1_048_576, ge=1024, description="Largest file inside a shipped set (HTTP 413 above)."
    )
    max_set_bytes: int = Field(
        default=4 * 1_073_741_824, ge=1024, description="Largest total of file sizes in one shipped set."
    )
    receiver_upload_concurrency: int = Field(
        default=16, ge=1, description="Images the receiver checks and hashes in parallel (bounds its memory)."
    )
    receiver_parts_in_flight: int = Field(
        default=4, ge=1, description="Multipart parts of a set's shard the receiver uploads to S3 at once."
    )
    shipper_backoff_max_s: float = Field(
        default=60.0, gt=0, description="Longest wait between two attempts to ship a set."
    )


class DeliverySettings(BaseSettings):
    """Core to edge: the sync controllers that swap verified model versions in."""

    model_config = _group("EDGECORE_EDGE_SYNC_")

    fleet_file: Path | None = Field(
        default=None,
        validation_alias="EDGECORE_EDGE_FLEET_FILE",
        description="JSON list of edges and their targets; defaults to <state_dir>/edges.json.",
    )
    poll_s: float = Field(
        default=30.0,
        gt=0,
        description="How often each controller polls its edge bucket (the Kafka fallback).",
    )
    ready_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="How long a rollout may take to report Ready before it is rolled back.",
    )
    workers: int = Field(
        default=8, ge=1, description="Parallel downloads per model, and parallel edges in a controller fleet."
    )
    metrics_port: int = Field(
        default=9310,
        ge=1,
        le=65535,
        description="Port of the edge sync controllers' Prometheus /metrics endpoint.",
    )


class ListenerSettings(BaseSettings):
    """The core's training listener: dataset versions in, training runs out."""

    model_config = _group("EDGECORE_LISTENER_")

    coalesce_s: float = Field(
        default=0.0, ge=0, description="Dataset versions arriving within this window share one training run."
    )
    metrics_port: int = Field(default=9108, description="Prometheus port of the listener.", ge=1, le=65535)


_GROUPS: dict[str, type[BaseSettings]] = {
    "s3": S3Settings,
    "buckets": BucketSettings,
    "kafka": KafkaSettings,
    "images": ImageSettings,
    "serving": ServingSettings,
    "uplink": UplinkSettings,
    "delivery": DeliverySettings,
    "listener": ListenerSettings,
}


class Settings(BaseSettings):
    """Every group, and where this machine keeps state."""

    model_config = _group()

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

    def updated(self, **changes: Any) -> Settings:
        """A copy with some fields changed: ``updated(state_dir=p, kafka={"port": 9192})``."""
        update: dict[str, Any] = {}
        for name, value in changes.items():
            current = getattr(self, name)
            if isinstance(value, dict):  # validated, as the environment would be
                value = type(current).model_validate({**current.model_dump(), **value})
            update[name] = value
        return self.model_copy(update=update)

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
        """The listener's ledger of launched runs and the dry-run launcher's requests."""
        return self.state_dir / "listener"

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
