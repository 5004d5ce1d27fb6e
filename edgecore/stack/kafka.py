"""The real Apache Kafka broker: jars from Maven Central, KRaft mode, on 127.0.0.1.

``manifests/local/kafka/pom.xml`` names the broker and a log4j2 binding; Maven copies
their runtime dependencies into ``<cache_dir>/kafka-<version>/libs``.  One JVM runs a
combined broker+controller whose storage is formatted once.

Two client listeners: the core's own (PLAINTEXT, ``kafka.port``, bound to the core's
network; its clients are the core's services) and the edges' (``kafka.edge_port``):
TLS with the local stack's certificate, a SCRAM-SHA-512 login per edge, and ACLs
(``StandardAuthorizer``, nothing allowed without one) so that an edge reads only its
own topic (``foundation.kafka_users``, ``edgecore core enrol``).
"""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from edgecore.stack.process import ManagedProcess, wait_until
from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import StackError, port_open, require, run_build
from foundation.settings import Settings

POM = Path(__file__).resolve().parents[2] / "manifests" / "local" / "kafka" / "pom.xml"

_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = warn
logger.apache.name = org.apache.kafka
logger.apache.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
"""


class KafkaService:
    name = "kafka"

    def __init__(self, settings: Settings, stack: StackSettings) -> None:
        self.settings = settings
        self.stack = stack
        self.home = stack.cache_dir / f"kafka-{stack.kafka_version}"
        self.libs = self.home / "libs"
        self.base = settings.state_dir / "kafka"
        self.data_dir = self.base / "data"
        self.config = self.base / "server.properties"
        self.process = ManagedProcess("kafka", settings.state_dir / "run", marker=str(self.config))

    @property
    def address(self) -> str:
        return self.settings.kafka.bootstrap_servers

    def installed(self) -> bool:
        return any(self.libs.glob(f"kafka_2.13-{self.stack.kafka_version}.jar"))

    def install(self) -> bool:
        """Resolve the broker's jars with Maven unless present; True if resolved now."""
        if self.installed():
            return False
        require("java")
        mvn = require("mvn")
        if not POM.exists():
            raise StackError(f"{POM} is missing: run edgecore from its source checkout")
        run_build(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-Dkafka.version={self.stack.kafka_version}",
                f"-DoutputDirectory={self.libs}",
                "-DincludeScope=runtime",
            ],
            os.environ,
            self.stack.cache_dir / "logs" / "kafka-resolve.log",
            f"resolving Kafka {self.stack.kafka_version} from Maven Central",
        )
        return True

    def _write_config(self) -> None:
        s = self.settings
        self.base.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{s.kafka.host}:{self.stack.kafka_controller_port}",
                    f"listeners=PLAINTEXT://{s.kafka.host}:{s.kafka.port},"
                    f"CONTROLLER://{s.kafka.host}:{self.stack.kafka_controller_port},"
                    f"EDGE://{s.kafka.host}:{s.kafka.edge_port}",
                    f"advertised.listeners=PLAINTEXT://{s.kafka.host}:{s.kafka.port},"
                    f"EDGE://{s.kafka.host}:{s.kafka.edge_port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,EDGE:SASL_SSL",
                    *self._edge_listener(),
                    f"log.dirs={self.data_dir}",
                    f"num.partitions={s.kafka.partitions}",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    f"message.max.bytes={s.kafka.max_event_bytes + 65_536}",
                    "",
                ]
            )
        )
        (self.base / "log4j2.properties").write_text(_LOG4J2)

    def _edge_listener(self) -> list[str]:
        """TLS with the stack's certificate and a SCRAM login per edge; ACLs for everyone but the core."""
        keystore = self.base / "edge-listener.pem"  # Kafka's PEM keystore: the key, then the chain
        keystore.touch(mode=0o600, exist_ok=True)
        keystore.write_bytes(self.settings.key_file.read_bytes() + self.settings.cert_file.read_bytes())
        return [
            "listener.name.edge.sasl.enabled.mechanisms=SCRAM-SHA-512",
            "listener.name.edge.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.edge.ssl.keystore.type=PEM",
            f"listener.name.edge.ssl.keystore.location={keystore}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            # the core's own listener and the controller carry no login: their principal is the core
            "super.users=User:ANONYMOUS",
        ]

    def _java_argv(self, main: str, *args: str) -> list[str]:
        heap = f"{self.stack.kafka_heap_mb}m"
        return [
            require("java"),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.base / 'log4j2.properties'}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def _format_once(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = new_cluster_id()
        run_build(
            self._java_argv("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config)),
            os.environ,
            self.base / "format.log",
            "formatting Kafka's KRaft storage",
        )

    def healthy(self) -> bool:
        """Ready when an admin metadata call succeeds."""
        if not port_open(self.settings.kafka.host, self.settings.kafka.port):
            return False
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.address, request_timeout_ms=3000, client_id="edgecore-health"
            )
        except KafkaError:
            return False
        try:
            return bool(admin.describe_cluster().get("brokers"))
        except KafkaError:
            return False
        finally:
            admin.close()

    def start(self, timeout_s: float = 90.0) -> bool:
        if self.process.pid() is not None:
            wait_until(self.healthy, timeout_s, "Kafka", self.process)
            return False
        for port, name in (
            (self.settings.kafka.port, "EDGECORE_KAFKA_PORT"),
            (self.stack.kafka_controller_port, "EDGECORE_KAFKA_CONTROLLER_PORT"),
            (self.settings.kafka.edge_port, "EDGECORE_KAFKA_EDGE_PORT"),
        ):
            if port_open(self.settings.kafka.host, port):
                raise StackError(
                    f"port {self.settings.kafka.host}:{port} is taken by a process edgecore did not "
                    f"start; stop it or set {name}"
                )
        self._write_config()
        self._format_once()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home())}
        self.process.start(self._java_argv("kafka.Kafka", str(self.config)), env, cwd=self.base)
        wait_until(self.healthy, timeout_s, "Kafka", self.process)
        return True

    def version(self) -> str:
        return self.stack.kafka_version if self.installed() else "not installed"


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka makes one: a random UUID in URL-safe base64, never starting with
    ``-``, which the storage tool's parser would take for an option (one id in 64 did, and failed)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
