"""The settings of what crosses between a store and the core: uplink, delivery, the front door, TLS."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from foundation.settings.groups import group_config


class UplinkSettings(BaseSettings):
    """Edge to core: the gateway, its MQTT intake and shipper at the edge, the receiver at the core."""

    model_config = group_config()

    gateway_port: int = Field(
        default=8081, description="Port of an edge's device/kiosk gateway.", ge=1, le=65535
    )
    mqtt_host: str = Field(default="127.0.0.1", description="MQTT broker that devices publish images to.")
    mqtt_port: int = Field(
        default=1883, description="Port of that broker (Mosquitto locally).", ge=1, le=65535
    )
    mqtt_password: SecretStr = Field(
        default=SecretStr(""),
        description="The gateway's password at the store's broker (login gateway-<edge>).",
    )
    gateway_host: str = Field(default="127.0.0.1", description="Address an edge's gateway listens on.")
    gateway_max_connections: int = Field(
        default=256,
        ge=1,
        description="Connections the gateway serves at once (kiosks, devices, the store page); more are "
        "answered 503, so waiting uploads cannot hold memory without bound.",
    )
    gateway_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Prometheus port of an edge's gateway, apart from its API "
        "(unset: no /metrics; several gateways share a machine locally).",
    )
    gateway_metrics_host: str = Field(
        default="127.0.0.1", description="Address the gateway's /metrics listens on (in a pod: 0.0.0.0)."
    )
    device_tokens_file: Path | None = Field(
        default=None,
        description="Gateway: JSON {device id: token} of the devices that may post images; default "
        "<state_dir>/gateway/<edge>/devices.json.",
    )
    staff_tokens_file: Path | None = Field(
        default=None,
        description="Gateway: JSON {staff id: token} of who may label, complete sets and change the "
        "catalogue; default <state_dir>/gateway/<edge>/staff.json.",
    )
    max_decode_pixels: int = Field(
        default=60_000_000,
        ge=1_000_000,
        description="Gateway: pixels decoded at once over all requests (about 3 bytes each); an image "
        "waits for its turn, so a flood of large images cannot exhaust memory.",
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

    model_config = group_config("EDGECORE_EDGE_SYNC_")

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
        default=50.0,
        gt=0,
        description="How long a new version may take to serve before it is rolled back; with the restore, a "
        "bad version is gone within a minute (raise it for models that take longer to download).",
    )
    workers: int = Field(
        default=8, ge=1, description="Parallel downloads per model, and parallel edges in a controller fleet."
    )
    model_source: Literal["s3", "oci"] = Field(
        default="s3",
        description="What each predictor is pointed at: the version in the edge's bucket (s3://, or the "
        "controller's verified copy for a local server), or its modelcar through the front door "
        "(oci://<door>/edges/<edge>/models/<model>@sha256:…, verified against the version's manifest first).",
    )
    metrics_port: int = Field(
        default=9310,
        ge=1,
        le=65535,
        description="Port of the edge sync controllers' Prometheus /metrics endpoint.",
    )
    metrics_host: str = Field(default="127.0.0.1", description="Address that /metrics endpoint listens on.")
    report_s: float = Field(
        default=300.0,
        ge=1,
        le=3600,
        description="At an edge site: how often the controller reports what it serves and how its predictor "
        "fares (requests, unsure, errors, latency) to the core's front door; the core's page plots a day of "
        "five-minute points.",
    )
    wave_bake_s: float = Field(
        default=600.0,
        ge=0,
        description="How long every edge of a rollout wave serves a release before the next wave takes it.",
    )
    wave_max_error_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="A baking edge whose predictor fails a larger share of requests halts the release.",
    )
    wave_max_unsure_rate: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="A baking edge with a larger share of unsure predictions halts the release.",
    )
    wave_min_predictions: int = Field(
        default=50,
        ge=0,
        description="Predictions a baking edge must answer before its rates are judged and its wave "
        "may finish.",
    )


class DoorSettings(BaseSettings):
    """The core's front door: the only address edges reach, over TLS, each with its own token."""

    model_config = group_config("EDGECORE_DOOR_")

    host: str = Field(default="127.0.0.1", description="Address the front door listens on.")
    port: int = Field(default=8443, ge=1, le=65535, description="Port of the front door (HTTPS).")
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Prometheus port of the front door, never the edge-facing one (unset: no /metrics).",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Address the front door's /metrics listens on (in a pod: 0.0.0.0)."
    )
    url: str = Field(default="https://127.0.0.1:8443", description="Where an edge reaches the front door.")
    token: SecretStr = Field(default=SecretStr(""), description="Edge side: this edge's front-door token.")
    tokens_file: Path | None = Field(
        default=None,
        description="Core side: JSON {edge id: token or [new, old]} read again when it changes; default "
        "<state_dir>/door/tokens.json (`edgecore core enrol` writes it).",
    )
    wait_s: float = Field(
        default=25.0, gt=0, le=120, description="Longest an edge's long poll for a new model is held."
    )
    report_interval_s: float = Field(
        default=2.0,
        ge=0,
        le=3600,
        description="An edge's report sooner than this after its last is dropped (the next carries its "
        "points): a store reporting in a loop costs the core one write per interval.",
    )
    max_connections: int = Field(
        default=2000,
        ge=1,
        description="Connections the front door serves at once (each edge holds one long poll); "
        "more are answered 503 and retried by the edge.",
    )


class TlsSettings(BaseSettings):
    """Certificates of the edge-to-core paths; defaults are the local stack's (<state_dir>/tls)."""

    model_config = group_config("EDGECORE_TLS_")

    ca_file: Path | None = Field(
        default=None, description="CA bundle edges trust the core's certificates by."
    )
    cert_file: Path | None = Field(default=None, description="Core side: the front door's certificate.")
    key_file: Path | None = Field(default=None, description="Core side: its private key.")
    client_ca_file: Path | None = Field(
        default=None, description="Core side: when set, edges must also present a certificate this CA signed."
    )
    client_cert_file: Path | None = Field(default=None, description="Edge side: a client certificate.")
    client_key_file: Path | None = Field(default=None, description="Edge side: its private key.")


class ModelcarSettings(BaseSettings):
    """Models as OCI images (KServe modelcars): where publish pushes them and how the core reaches them."""

    model_config = group_config("EDGECORE_MODELCAR_")

    registry: str = Field(
        default="",
        pattern=r"^([A-Za-z0-9.\-]+(:[0-9]+)?(/[a-z0-9._\-]+)*)?$",
        description="host[:port][/path] of the core's registry; publish pushes each version there as "
        "<registry>/models/<model>:<version> and the front door serves them to edges (empty: no modelcars).",
    )
    base: str | None = Field(
        default=None,
        description="The image every modelcar is layered on (a shell KServe runs the sidecar with); "
        "default <registry>/edgecore-modelcar-base:0.1.0, which `edgecore images build` pushes.",
    )
    ca_file: Path | None = Field(
        default=None, description="CA the registry's certificate is checked by; default the local stack's."
    )
    cert_file: Path | None = Field(
        default=None, description="Client certificate the core pushes and reads with; default the stack's."
    )
    key_file: Path | None = Field(default=None, description="Its private key.")
