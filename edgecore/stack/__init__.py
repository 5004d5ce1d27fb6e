"""The real local stack of the core: MinIO, Apache Kafka and a Kubernetes API server on 127.0.0.1.

``install`` builds/resolves them (and Debian's Mosquitto, for the stores' sites, etcd, and
promtool, for the alert rules' tests)
into the per-user cache; ``up`` makes the local CA and the core's certificate
(``certificates``), starts Kafka (its edge listener with TLS, SCRAM logins and ACLs),
creates edgecore's topics, starts MinIO (whose notifications go to Kafka), creates the
core buckets and wires the training bucket's object-created events to Kafka, and starts
the Kubernetes control plane (``controlplane``: etcd and kube-apiserver, no runtime) and
the OCI registry images are pushed to (``registry``).  Each
store runs as a site of its own (``site``).  ``up`` on a running stack changes nothing;
``down`` stops only the processes ``up`` started.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgecore.stack.certificates import Pki
from edgecore.stack.controlplane import ControlPlane
from edgecore.stack.kafka import KafkaService
from edgecore.stack.minio import NOTIFY_ARN, MinioService
from edgecore.stack.mosquitto import MosquittoInstall
from edgecore.stack.promtool import PromtoolInstall
from edgecore.stack.registry import RegistryService
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
        self.kubernetes = ControlPlane(settings, self.stack)
        self.pki = Pki(settings.tls_dir)
        self.registry = RegistryService(settings, self.stack, self.pki)

    def services(self) -> list[KafkaService | MinioService | ControlPlane | RegistryService]:
        return [self.kafka, self.minio, self.kubernetes, self.registry]

    def install(self, report: Report = lambda _: None) -> None:
        report(f"MinIO {self.stack.minio_module_version}: building with go install if needed")
        if self.minio.install():
            report("MinIO built")
        report(f"Kafka {self.stack.kafka_version}: resolving jars with Maven if needed")
        if self.kafka.install():
            report("Kafka resolved")
        report(
            f"Kubernetes {self.stack.kubernetes_version}: etcd from Debian, kube-apiserver built with go "
            "build if needed (several minutes the first time)"
        )
        if self.kubernetes.install():
            report("Kubernetes control plane built")
        report(f"OCI registry {self.stack.registry_module_version}: building with go install if needed")
        if self.registry.install():
            report("OCI registry built")
        report("Mosquitto (for the stores' MQTT intake): Debian's package, downloaded if needed")
        try:
            if MosquittoInstall(self.stack).install():
                report("Mosquitto unpacked")
        except StackError as exc:  # optional: the stores' MQTT intake is
            report(f"Mosquitto unavailable, the gateway's MQTT intake with it: {exc}")
        report("promtool (unit tests of the alert rules): Debian's prometheus package, downloaded if needed")
        if PromtoolInstall(self.stack).install():
            report("promtool unpacked")

    def up(self, report: Report = lambda _: None) -> bool:
        """Install if needed and start every service; False when all was already up."""
        self.install(report)
        if self.pki.ensure():
            report(f"made the local CA and the core's certificate in {self.pki.folder}")
        started = False
        report("starting Kafka (KRaft)")
        started |= self.kafka.start()
        report("starting MinIO")
        started |= self.minio.start()
        report("starting the Kubernetes control plane (etcd, kube-apiserver)")
        started |= self.kubernetes.start()
        report("starting the OCI registry")
        started |= self.registry.start()
        created = self.init()
        if created:
            report(f"created topics {', '.join(created)}")
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
        """Stop Kubernetes, the registry, MinIO, then Kafka (MinIO queues events while Kafka is
        gone); data stays."""
        stopped = [self.kubernetes.name] if self.kubernetes.stop() else []
        services = (self.registry, self.minio, self.kafka)
        return stopped + [svc.name for svc in services if svc.process.stop()]

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
