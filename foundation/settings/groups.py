"""The settings groups, one per concern; ``foundation.settings.Settings`` holds one of each (the
edge-to-core paths' groups are in ``foundation.settings.links``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from foundation.addresses import require_https_or_loopback
from foundation.errors import InvalidInput


def group_config(prefix: str = "EDGECORE_") -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix, env_file=".env", extra="ignore", frozen=True, populate_by_name=True
    )


class S3Settings(BaseSettings):
    """The S3 endpoint (MinIO locally) and its credentials."""

    model_config = group_config("EDGECORE_S3_")

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
    ca_file: Path | None = Field(
        default=None, description="An https endpoint's certificate is checked against this CA bundle."
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

    model_config = group_config()

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

    model_config = group_config("EDGECORE_KAFKA_")

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
    topic_anomaly_detected: str = Field(
        default="edgecore.anomaly-detected",
        validation_alias="EDGECORE_TOPIC_ANOMALY_DETECTED",
        description="Prefix of each edge's `anomaly-detected` topic (`<prefix>.<edge>`): its alarms.",
    )
    topic_smoke: str = Field(
        default="edgecore.smoke",
        validation_alias="EDGECORE_TOPIC_SMOKE",
        description="Where `edgecore stack smoke` sends its test event (no service reads it).",
    )
    create_topics: bool = Field(
        default=True,
        description="Services create missing topics (the local stack); false on a cluster, where Strimzi's "
        "KafkaTopic resources own them and a missing one is an error.",
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
    edge_port: int = Field(
        default=9094,
        ge=1,
        le=65535,
        description="The broker's listener for edges: TLS and a SCRAM-SHA-512 login per edge, ACLs.",
    )
    security_protocol: str = Field(
        default="PLAINTEXT",
        pattern=r"^(PLAINTEXT|SASL_SSL)$",
        description="PLAINTEXT on the core's internal listener; SASL_SSL for an edge (with its login).",
    )
    username: str = Field(default="", description="SASL_SSL: this edge's Kafka user (`edge-<edge id>`).")
    password: SecretStr = Field(default=SecretStr(""), description="SASL_SSL: that user's password.")
    ca_file: Path | None = Field(
        default=None, description="SASL_SSL: CA bundle the broker's certificate is checked against."
    )

    def edge_topic(self, edge: str) -> str:
        """The topic of one edge's ``model-published`` events: the only topic its Kafka user may read."""
        return f"{self.topic_model_published}.{edge}"

    def anomaly_topic(self, edge: str) -> str:
        """The topic an edge announces its machines' alarms on: the only topic its Kafka user may write,
        so no edge can raise another's alarm."""
        return f"{self.topic_anomaly_detected}.{edge}"

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

    model_config = group_config("EDGECORE_IMAGE_")

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

    model_config = group_config()

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
    server_host: str = Field(default="127.0.0.1", description="Address the edge model server listens on.")
    alarm_webhook_url: SecretStr | None = Field(
        default=None,
        description="Where a store's gateway also POSTs each machine alarm (the anomaly-detected "
        "CloudEvent): https://, or http:// to a loopback address. Unset: Kafka only. Secret: such "
        "URLs often carry their key.",
    )
    alarm_webhook_token_file: Path | None = Field(
        default=None, description="A file holding the bearer token the alarm webhook is sent with."
    )

    @field_validator("alarm_webhook_url")
    @classmethod
    def _webhook_url(cls, url: SecretStr | None) -> SecretStr | None:
        try:
            if url is not None:
                require_https_or_loopback(url.get_secret_value(), "the alarm webhook URL")
            return url
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None  # a settings error: one line, the URL not repeated


class ListenerSettings(BaseSettings):
    """The core's training listener: dataset versions in, training runs out."""

    model_config = group_config("EDGECORE_LISTENER_")

    coalesce_s: float = Field(
        default=0.0, ge=0, description="Dataset versions arriving within this window share one training run."
    )
    metrics_port: int = Field(default=9108, description="Prometheus port of the listener.", ge=1, le=65535)
    metrics_host: str = Field(default="127.0.0.1", description="Address the listener's /metrics listens on.")


class KfpSettings(BaseSettings):
    """How the core reaches a Kubeflow Pipelines API (multi-user Kubeflow: a namespace and a token)."""

    model_config = group_config("EDGECORE_KFP_")

    namespace: str | None = Field(
        default=None, description="Namespace runs go to: the Kubeflow profile's (unset: KFP's default)."
    )
    token_file: Path | None = Field(
        default=None,
        description="Bearer token file, e.g. a projected service-account token with audience "
        "pipelines.kubeflow.org; read at every connection, as it rotates.",
    )
    ca_file: Path | None = Field(
        default=None, description="CA bundle the KFP API's certificate is checked by."
    )


class ConsoleSettings(BaseSettings):
    """The core's status page for ML engineers: datasets, runs, versions, waves, dead letters."""

    model_config = group_config("EDGECORE_CONSOLE_")

    host: str = Field(default="127.0.0.1", description="Address the core's status page listens on.")
    port: int = Field(default=8097, ge=1, le=65535, description="Port of the core's status page (HTTP).")
    max_connections: int = Field(
        default=100,
        ge=1,
        description="Connections the core's status page serves at once; more are answered 503.",
    )
    operators_file: Path | None = Field(
        default=None,
        description="JSON {operator id: token} of who may read the core's status page; default "
        "<state_dir>/console/operators.json.",
    )
