"""What only the local stack needs: pinned versions to build, where builds are cached, its own ports.

These are install-time facts of this machine (``stack install`` / ``stack up``, and
``manifests build`` for kustomize), so they live with the application, not in the
settings every service reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_HOME = Path.home()


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EDGECORE_", env_file=".env", extra="ignore", frozen=True, populate_by_name=True
    )

    cache_dir: Path = Field(
        default=_HOME / ".cache" / "edgecore",
        description="Built binaries and resolved jars, shared by every clone and CI run.",
    )
    minio_module_version: str = Field(
        default="v0.0.0-20260212201848-7aac2a2c5b7c",
        description="Pinned Go module version of github.com/minio/minio built by `stack install`.",
    )
    minio_console_port: int = Field(
        default=9001,
        ge=1,
        le=65535,
        validation_alias="EDGECORE_S3_CONSOLE_PORT",
        description="MinIO web console port.",
    )
    kafka_version: str = Field(
        default="4.1.1", description="Apache Kafka version resolved from Maven Central."
    )
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535, description="KRaft controller port.")
    kafka_heap_mb: int = Field(default=512, ge=128, description="Java heap of the local broker.")
    kubernetes_version: str = Field(
        default="v1.34.4",
        description="Pinned k8s.io/kubernetes version whose kube-apiserver `stack install` builds.",
    )
    etcd_module_version: str = Field(
        default="v3.6.16",
        description="Pinned go.etcd.io/etcd/server/v3 version `stack install` builds for the API server.",
    )
    kube_host: str = Field(
        default="127.0.0.1", description="Address the local Kubernetes API server and its etcd bind."
    )
    kube_apiserver_port: int = Field(default=6443, ge=1, le=65535, description="Local API server port (TLS).")
    etcd_port: int = Field(default=2379, ge=1, le=65535, description="Local etcd client port.")
    etcd_peer_port: int = Field(default=2380, ge=1, le=65535, description="Local etcd peer port.")
    kustomize_module_version: str = Field(
        default="v5.8.0",
        description="Pinned sigs.k8s.io/kustomize/kustomize/v5 version `edgecore manifests` builds with.",
    )

    registry_module_version: str = Field(
        default="v3.1.2",
        description="Pinned github.com/distribution/distribution/v3 version: the stack's OCI registry.",
    )
    registry_host: str = Field(default="127.0.0.1", description="Address the local OCI registry binds.")
    registry_port: int = Field(default=5443, ge=1, le=65535, description="Local OCI registry port (TLS).")
    container_storage_driver: Literal["auto", "overlay", "vfs"] = Field(
        default="auto",
        description="podman's storage driver: auto takes the kernel's overlay where it mounts, else vfs.",
    )
    image_base: str = Field(
        default="debian",
        description="Base of the images `make images` builds: debian (a bookworm root filesystem "
        "made here with mmdebstrap) or an image reference such as docker.io/library/python:3.11-slim.",
    )
    debian_mirror: str = Field(
        default="http://deb.debian.org/debian", description="Where mmdebstrap fetches the base's packages."
    )

    @property
    def bin_dir(self) -> Path:
        return self.cache_dir / "bin"
