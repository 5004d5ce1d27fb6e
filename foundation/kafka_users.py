"""Edges as Kafka users: a SCRAM-SHA-512 login each, and ACLs that let it read its own topic only.

An edge connects to the broker's edge listener (TLS) as ``edge-<edge id>``.  Its ACLs
allow reading (and describing) ``<model-published topic>.<edge id>`` and using consumer
its consumer group ``edgecore-edge-sync-<edge id>``; nothing else, since the broker allows
nothing without an ACL.  The core's services use the internal listener.  Rotating an
edge's password is one more :func:`grant_edge` (SCRAM keeps one password per user, so
the edge's settings must follow; the front-door token is the credential with overlap).
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka.errors import KafkaError

from foundation.credentials import new_token
from foundation.errors import ServiceUnavailable
from foundation.layout import check_name
from foundation.messaging import connection, ensure_topics
from foundation.settings import KafkaSettings

SCRAM_ITERATIONS = 8192


def kafka_user(edge: str) -> str:
    return f"edge-{check_name(edge, 'edge id')}"


def edge_group(edge: str) -> str:
    """The one consumer group an edge may use (``edge_sync.delivery.sources.consumer_group``); a
    literal name, so edge ``store-1`` cannot join ``store-10``'s group."""
    return f"edgecore-edge-sync-{check_name(edge, 'edge id')}"


def new_password() -> str:
    """An edge's SASL password: drawn as every other credential is, so the start-up check passes it."""
    return new_token()


EdgePermission = tuple[str, str, str, tuple[str, ...]]
"""(resource type, name, pattern type, operations), in Kafka's own words."""


def edge_permissions(kafka: KafkaSettings, edge: str) -> list[EdgePermission]:
    """What an edge may do on the broker: the one list the broker's ACLs and the KafkaUser
    manifests (``edgecore manifests edge-access``) are both made from."""
    return [
        ("topic", kafka.edge_topic(edge), "literal", ("Read", "Describe")),
        ("group", edge_group(edge), "literal", ("Read", "Describe")),
        ("topic", kafka.anomaly_topic(edge), "literal", ("Write", "Describe")),
    ]


_RESOURCES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
_PATTERNS = {"literal": ACLResourcePatternType.LITERAL, "prefix": ACLResourcePatternType.PREFIXED}
_OPERATIONS = {"Read": ACLOperation.READ, "Write": ACLOperation.WRITE, "Describe": ACLOperation.DESCRIBE}


def grant_edge(kafka: KafkaSettings, edge: str, password: str) -> None:
    """The edge's login (created or replaced), its topic and its ACLs."""
    ensure_topics(kafka, extra=[kafka.edge_topic(edge), kafka.anomaly_topic(edge)])
    user = kafka_user(edge)
    acls = [
        ACL(
            f"User:{user}",
            "*",
            _OPERATIONS[operation],
            ACLPermissionType.ALLOW,
            ResourcePattern(_RESOURCES[kind], name, _PATTERNS[pattern]),
        )
        for kind, name, pattern, operations in edge_permissions(kafka, edge)
        for operation in operations
    ]
    upsert = UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_512, password, SCRAM_ITERATIONS)
    with _admin(kafka) as admin:
        errors = admin.alter_user_scram_credentials([upsert])
        if errors.get(user):
            raise ServiceUnavailable(f"Kafka: could not set the login of {user}: {errors[user]}")
        result = admin.create_acls(acls)
        if result.get("failed"):
            raise ServiceUnavailable(f"Kafka: could not create the ACLs of {user}: {result['failed']}")


def revoke_edge(kafka: KafkaSettings, edge: str) -> None:
    """The edge's login and every ACL of it removed."""
    user = kafka_user(edge)
    everything = ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY)
    with _admin(kafka) as admin:
        admin.alter_user_scram_credentials([UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)])
        admin.delete_acls(
            [ACLFilter(f"User:{user}", "*", ACLOperation.ANY, ACLPermissionType.ANY, everything)]
        )


class _admin:
    """A short-lived admin client on the core's own listener."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.client: KafkaAdminClient | None = None

    def __enter__(self) -> Any:
        try:
            self.client = KafkaAdminClient(**connection(self.kafka), client_id="edgecore-enrol")
        except KafkaError as exc:
            raise ServiceUnavailable(f"Kafka at {self.kafka.bootstrap_servers}: {exc}") from exc
        return self.client

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
