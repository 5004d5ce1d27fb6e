"""The real MinIO server: built from source with ``go install``, run on 127.0.0.1.

MinIO is distributed as source only; its documented install is
``go install github.com/minio/minio@<version>``.  The binary goes to the per-user cache
(``<cache_dir>/bin``) so every clone and CI run on a machine builds it once.  MinIO's
own bucket notifications are wired to Kafka through ``MINIO_NOTIFY_KAFKA_*``.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from edgecore.stack.gobuild import go_install, installed_version
from edgecore.stack.process import ManagedProcess, wait_until
from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import StackError, port_open
from foundation.settings import Settings

NOTIFY_TARGET = "EDGECORE"
NOTIFY_ARN = f"arn:minio:sqs::{NOTIFY_TARGET}:kafka"


class MinioService:
    name = "minio"

    def __init__(
        self,
        settings: Settings,
        stack: StackSettings,
        console_port: int | None = None,
        notify: bool = True,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """``notify``: the core's MinIO tells Kafka of new objects; a store's has no Kafka to tell.
        ``tls``: (certificate, key) to serve HTTPS with (``settings.s3.ca_file`` checks it)."""
        self.settings = settings
        self.stack = stack
        self.console_port = console_port or stack.minio_console_port
        self.notify = notify
        self.tls = tls
        self.binary = stack.bin_dir / "minio"
        self.data_dir = settings.state_dir / "minio" / "data"
        self.process = ManagedProcess("minio", settings.state_dir / "run", marker=str(self.data_dir))

    @property
    def address(self) -> str:
        return f"{self.settings.s3.host}:{self.settings.s3.port}"

    def install(self) -> bool:
        """Build the pinned MinIO unless that exact version is already built; True if built."""
        wanted = self.stack.minio_module_version
        return go_install(self.stack, "github.com/minio/minio", wanted, "minio", "MinIO")

    def healthy(self) -> bool:
        scheme = "https" if self.tls else "http"
        verify: str | bool = str(self.settings.s3.ca_file) if self.settings.s3.ca_file else True
        try:
            return (
                httpx.get(
                    f"{scheme}://{self.address}/minio/health/ready", timeout=1.0, verify=verify
                ).status_code
                == 200
            )
        except httpx.HTTPError:
            return False

    def start(self, timeout_s: float = 60.0) -> bool:
        """Start MinIO unless ours is already running; True if it was started."""
        if self.process.pid() is not None:
            wait_until(self.healthy, timeout_s, "MinIO", self.process)
            return False
        if port_open(self.settings.s3.host, self.settings.s3.port):
            raise StackError(
                f"port {self.address} is taken by a process edgecore did not start; "
                "stop it or set EDGECORE_S3_PORT"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        queue_dir = self.settings.state_dir / "minio" / "notify-queue"
        queue_dir.mkdir(parents=True, exist_ok=True)
        s = self.settings
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(Path.home()),
            "MINIO_ROOT_USER": s.s3.access_key,
            "MINIO_ROOT_PASSWORD": s.s3.secret_key.get_secret_value(),
            "MINIO_UPDATE": "off",
        }
        if self.notify:
            env |= {
                f"MINIO_NOTIFY_KAFKA_ENABLE_{NOTIFY_TARGET}": "on",
                f"MINIO_NOTIFY_KAFKA_BROKERS_{NOTIFY_TARGET}": s.kafka.bootstrap_servers,
                f"MINIO_NOTIFY_KAFKA_TOPIC_{NOTIFY_TARGET}": s.kafka.topic_s3_events,
                # Events survive a Kafka outage: MinIO queues them on disk and replays them.
                f"MINIO_NOTIFY_KAFKA_QUEUE_DIR_{NOTIFY_TARGET}": str(queue_dir),
            }
        argv = [
            str(self.binary),
            "server",
            str(self.data_dir),
            "--address",
            self.address,
            "--console-address",
            f"{s.s3.host}:{self.console_port}",
            "--quiet",
        ]
        if self.tls is not None:
            argv += ["--certs-dir", str(self._certs())]
        self.process.start(argv, env)
        wait_until(self.healthy, timeout_s, "MinIO", self.process)
        return True

    def _certs(self) -> Path:
        """MinIO's certificate folder: ``public.crt`` and ``private.key``."""
        assert self.tls is not None
        folder = self.settings.state_dir / "minio" / "certs"
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        (folder / "public.crt").write_bytes(self.tls[0].read_bytes())
        key = folder / "private.key"
        key.touch(mode=0o600, exist_ok=True)
        key.write_bytes(self.tls[1].read_bytes())
        return folder

    def version(self) -> str:
        return installed_version(self.stack, "minio") or "not installed"
