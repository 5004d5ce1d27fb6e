"""The real local stack: MinIO, Apache Kafka and Mosquitto on 127.0.0.1, no Docker, no Kubernetes.

``install`` builds/resolves them into the per-user cache; ``up`` starts Kafka, creates
edgecore's topics, starts MinIO (whose notifications go to Kafka), creates the core
buckets and wires the training bucket's object-created events to Kafka, then starts
the MQTT broker of the gateway's optional MQTT intake where Debian's mosquitto can be
had.  ``up`` on a running stack changes nothing; ``down`` stops only the processes
``up`` started.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgecore.stack.kafka import KafkaService
from edgecore.stack.minio import NOTIFY_ARN, MinioService
from edgecore.stack.mosquitto import MosquittoService
from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import StackError
from foundation.layout import Layout
from foundation.messaging import ensure_topics
from foundation.settings import Settings
from foundation.storage.store import ObjectStore

Report = Callable[[str], None]


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    address: str
    pid: int | None
    healthy: bool
    version: str


class Stack:
    def __init__(self, settings: Settings, stack: StackSettings | None = None) -> None:
        self.settings = settings
        self.stack = stack or StackSettings()
        self.kafka = KafkaService(settings, self.stack)
        self.minio = MinioService(settings, self.stack)
        self.mosquitto = MosquittoService(settings, self.stack)

    def services(self) -> list[KafkaService | MinioService | MosquittoService]:
        """The services this machine runs: mosquitto only where it could be installed."""
        optional = [self.mosquitto] if self.mosquitto.binary() is not None else []
        return [self.kafka, self.minio, *optional]

    def install(self, report: Report = lambda _: None) -> None:
        report(f"MinIO {self.stack.minio_module_version}: building with go install if needed")
        if self.minio.install():
            report("MinIO built")
        report(f"Kafka {self.stack.kafka_version}: resolving jars with Maven if needed")
        if self.kafka.install():
            report("Kafka resolved")
        report("Mosquitto: Debian's package, downloaded if needed")
        try:
            if self.mosquitto.install():
                report("Mosquitto unpacked")
        except StackError as exc:  # optional: MinIO and Kafka are all the rest needs
            report(f"Mosquitto unavailable, the gateway's MQTT intake with it: {exc}")

    def up(self, report: Report = lambda _: None) -> bool:
        """Install if needed and start both services; False when all was already up."""
        self.install(report)
        started = False
        report("starting Kafka (KRaft)")
        started |= self.kafka.start()
        report("starting MinIO")
        started |= self.minio.start()
        created = self.init()
        if created:
            report(f"created topics {', '.join(created)}")
        if self.mosquitto.binary() is not None:
            report("starting Mosquitto (MQTT)")
            started |= self.mosquitto.start()
        return started

    def init(self) -> list[str]:
        """Topics, core buckets and notifications on services started elsewhere (Docker, a cluster)."""
        created = ensure_topics(self.settings.kafka)
        self.prepare_buckets()
        return created

    def prepare_buckets(self) -> None:
        """Core buckets exist and the training bucket notifies Kafka of new objects."""
        store = ObjectStore(self.settings.s3)
        layout = Layout(self.settings.buckets)
        for bucket in (layout.training_bucket, layout.models_bucket):
            store.ensure_bucket(bucket)
        enable_notifications(store, layout.training_bucket)

    def down(self) -> list[str]:
        """Stop MinIO then Kafka (MinIO queues events while Kafka is gone); data stays."""
        return [svc.name for svc in (self.mosquitto, self.minio, self.kafka) if svc.process.stop()]

    def status(self) -> list[ServiceStatus]:
        return [
            ServiceStatus(svc.name, svc.address, svc.process.pid(), svc.healthy(), svc.version())
            for svc in self.services()
        ]

    def logs(self, service: str, lines: int = 40) -> str:
        return {svc.name: svc for svc in self.services()}[service].process.tail(lines)


def enable_notifications(store: ObjectStore, bucket: str) -> None:
    """MinIO publishes every object-created event of ``bucket`` to its Kafka target."""
    store.client.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": NOTIFY_ARN, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
