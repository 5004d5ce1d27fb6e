"""The one settings object of edgecore.

Built once at an entry point (CLI command, server main, pipeline component) with
``Settings()`` and passed down; nothing deeper reads ``os.environ``.  Every field can
be set with an ``EDGECORE_<FIELD>`` environment variable (or a ``.env`` file) and the
defaults point at the local stack that ``edgecore stack up`` starts on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_HOME = Path.home()


class Settings(BaseSettings):
    """Configuration shared by the CLI, the services, the pipeline and the tests."""

    model_config = SettingsConfigDict(env_prefix="EDGECORE_", env_file=".env", extra="ignore", frozen=True)

    # -- where things live on this machine -------------------------------------------
    state_dir: Path = Field(
        default=_HOME / ".local" / "state" / "edgecore",
        description="Data, logs and pid files of the local stack and the edge outboxes.",
    )
    cache_dir: Path = Field(
        default=_HOME / ".cache" / "edgecore",
        description="Built binaries and resolved jars, shared by every clone and CI run.",
    )

    kustomize_module_version: str = Field(
        default="v5.8.0",
        description="Pinned sigs.k8s.io/kustomize/kustomize/v5 version `edgecore manifests` builds with.",
    )

    # -- MinIO (S3) --------------------------------------------------------------------
    minio_module_version: str = Field(
        default="v0.0.0-20260212201848-7aac2a2c5b7c",
        description="Pinned Go module version of github.com/minio/minio built by `stack install`.",
    )
    s3_host: str = Field(default="127.0.0.1", description="Address MinIO listens on.")
    s3_port: int = Field(default=9000, description="MinIO S3 API port.")
    s3_console_port: int = Field(default=9001, description="MinIO web console port.")
    s3_endpoint: str | None = Field(
        default=None,
        description="S3 endpoint URL; defaults to http://<s3_host>:<s3_port> (the local MinIO).",
    )
    s3_region: str = Field(default="us-east-1", description="S3 region name sent to the endpoint.")
    s3_access_key: str = Field(default="edgecore", description="S3 access key (MinIO root user locally).")
    s3_secret_key: SecretStr = Field(
        default=SecretStr("edgecore-local-secret"),
        description="S3 secret key (MinIO root password locally).",
    )
    s3_multipart_threshold_mb: int = Field(
        default=8, description="Objects at least this big are uploaded in multipart chunks."
    )
    s3_multipart_chunk_mb: int = Field(default=8, description="Multipart chunk size.")

    # -- buckets -----------------------------------------------------------------------
    training_bucket: str = Field(
        default="edgecore-training", description="Core bucket holding immutable training datasets."
    )
    models_bucket: str = Field(
        default="edgecore-models", description="Core bucket holding the model registry."
    )
    edge_bucket_prefix: str = Field(
        default="edgecore-edge-", description="Each edge's own bucket is this prefix plus the edge id."
    )

    # -- Kafka -------------------------------------------------------------------------
    kafka_version: str = Field(
        default="4.1.1", description="Apache Kafka version resolved from Maven Central."
    )
    kafka_host: str = Field(default="127.0.0.1", description="Address the Kafka broker listens on.")
    kafka_port: int = Field(default=9092, description="Kafka client (PLAINTEXT) port.")
    kafka_controller_port: int = Field(default=9093, description="KRaft controller port.")
    kafka_bootstrap: str | None = Field(
        default=None,
        description="Bootstrap servers; defaults to <kafka_host>:<kafka_port> (the local broker).",
    )
    kafka_heap_mb: int = Field(default=512, description="Java heap of the local broker.")
    topic_training_data_ready: str = Field(
        default="edgecore.training-data-ready", description="Topic of `training-data-ready` events."
    )
    topic_model_published: str = Field(
        default="edgecore.model-published", description="Topic of `model-published` events."
    )
    topic_dead_letter: str = Field(
        default="edgecore.dead-letter",
        description="Where malformed records go, with the reason and the original bytes.",
    )
    topic_s3_events: str = Field(
        default="edgecore.s3-events", description="Topic MinIO publishes its bucket notifications to."
    )
    topic_partitions: int = Field(default=3, description="Partitions of each edgecore topic.")
    topic_retention_hours: int = Field(default=168, description="Retention of each edgecore topic.")
    max_event_bytes: int = Field(
        default=1_048_576, description="Largest Kafka record edgecore accepts or produces."
    )

    # -- training ----------------------------------------------------------------------
    image_size: int = Field(
        default=64, description="Side of the square model input, shared by training and serving."
    )

    # -- serving -----------------------------------------------------------------------
    confidence_threshold: float = Field(
        default=0.6, description="Predictions below this top-1 probability are kept as hard examples."
    )
    max_request_bytes: int = Field(
        default=8 * 1_048_576, description="Largest inference or upload body accepted (HTTP 413 above)."
    )
    max_image_pixels: int = Field(
        default=40_000_000, description="Largest declared image area decoded (decompression-bomb guard)."
    )

    # -- edge sync (model delivery to the edges' predictors) ----------------------------
    edge_fleet_file: Path | None = Field(
        default=None,
        description="JSON list of edges and their targets; defaults to <state_dir>/edges.json.",
    )
    edge_sync_poll_s: float = Field(
        default=30.0, description="How often each controller polls its edge bucket (the Kafka fallback)."
    )
    edge_sync_ready_timeout_s: float = Field(
        default=300.0, description="How long a rollout may take to report Ready before it is rolled back."
    )
    edge_sync_workers: int = Field(
        default=8, description="Parallel downloads per model, and parallel edges in a controller fleet."
    )
    edge_sync_metrics_port: int = Field(
        default=9310, description="Port of the edge sync controllers' Prometheus /metrics endpoint."
    )

    # -- edge sync (gateway, outbox, shipper, core receiver) and the training listener ----
    gateway_port: int = Field(default=8081, description="Port of an edge's device/kiosk gateway.")
    mqtt_host: str = Field(default="127.0.0.1", description="MQTT broker that devices publish images to.")
    mqtt_port: int = Field(default=1883, description="Port of that broker (Mosquitto in the local stack).")
    receiver_port: int = Field(default=8082, description="Port of the core receiver of edge sets.")
    receiver_url: str = Field(
        default="http://127.0.0.1:8082", description="Where an edge's shipper sends its sets."
    )
    edge_token: SecretStr = Field(
        default=SecretStr(""), description="This edge's bearer token for the core receiver."
    )
    edge_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Receiver side: edge id -> bearer token (JSON in EDGECORE_EDGE_TOKENS).",
    )
    edge_tokens_file: Path | None = Field(
        default=None, description="Receiver side: a JSON file {edge id: token}, merged with edge_tokens."
    )
    max_image_bytes: int = Field(
        default=8 * 1_048_576, description="Largest single image a device may post (HTTP 413 above)."
    )
    max_set_members: int = Field(default=20_000, description="Most files one shipped set may hold.")
    max_member_bytes: int = Field(
        default=16 * 1_048_576, description="Largest file inside a shipped set (HTTP 413 above)."
    )
    max_set_bytes: int = Field(
        default=4 * 1_073_741_824, description="Largest total of file sizes in one shipped set."
    )
    receiver_upload_concurrency: int = Field(
        default=16, description="Images the receiver checks and hashes in parallel (bounds its memory)."
    )
    receiver_parts_in_flight: int = Field(
        default=4, description="Multipart parts of a set's shard the receiver uploads to S3 at once."
    )
    shipper_backoff_max_s: float = Field(
        default=60.0, description="Longest wait between two attempts to ship a set."
    )
    listener_coalesce_s: float = Field(
        default=0.0, description="Dataset versions arriving within this window share one training run."
    )
    listener_metrics_port: int = Field(default=9108, description="Prometheus port of the listener.")

    @property
    def outbox_dir(self) -> Path:
        """The edges' durable outboxes (one SQLite file and one spool folder per edge)."""
        return self.state_dir / "outbox"

    @property
    def listener_dir(self) -> Path:
        """The listener's ledger of launched runs and the dry-run launcher's requests."""
        return self.state_dir / "listener"

    @property
    def s3_endpoint_url(self) -> str:
        return self.s3_endpoint or f"http://{self.s3_host}:{self.s3_port}"

    @property
    def kafka_bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"{self.kafka_host}:{self.kafka_port}"

    @property
    def run_dir(self) -> Path:
        """Pid files and logs of the processes `stack up` started."""
        return self.state_dir / "run"

    @property
    def bin_dir(self) -> Path:
        return self.cache_dir / "bin"


def settings_reference() -> str:
    """A Markdown table of every setting, for the README (a test keeps them in step)."""
    home = str(Path.home())
    rows = ["| environment variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            shown = "(secret)"
        elif default is None:
            shown = "—"
        else:
            shown = str(default).replace(home, "~")
        rows.append(f"| `EDGECORE_{name.upper()}` | `{shown}` | {field.description} |")
    return "\n".join(rows) + "\n"
