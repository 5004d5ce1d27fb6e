"""The core cluster's objects for each enrolled edge: its Kafka topic, its Kafka user and ACLs,
and the S3 policies of its scope.

Built from the same rules the local stack applies (``foundation.kafka_users.edge_permissions``,
``foundation.s3_policies``), so the cluster and the tests agree on what an edge may do.
``manifests/core/edge-access.yaml`` is this module's output for the example fleet.
"""

from __future__ import annotations

import json
from typing import Any

from foundation.kafka_users import edge_permissions, kafka_user
from foundation.layout import Layout
from foundation.s3_policies import edge_core_policy, edge_site_policy
from foundation.settings import Settings

CLUSTER_LABEL = {"strimzi.io/cluster": "edgecore"}


def edge_topic(settings: Settings, edge: str) -> dict[str, Any]:
    """The topic the edge reads its ``model-published`` events from."""
    return _topic(settings, f"model-published-{edge}", settings.kafka.edge_topic(edge))


def anomaly_topic(settings: Settings, edge: str) -> dict[str, Any]:
    """The topic the edge announces its machines' alarms on (``anomaly-detected``)."""
    return _topic(settings, f"anomaly-detected-{edge}", settings.kafka.anomaly_topic(edge))


def _topic(settings: Settings, name: str, topic: str) -> dict[str, Any]:
    kafka = settings.kafka
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": name, "labels": dict(CLUSTER_LABEL)},
        "spec": {
            "topicName": topic,
            "partitions": kafka.partitions,
            "replicas": 3,
            "config": {"retention.ms": kafka.retention_hours * 3600 * 1000},
        },
    }


def edge_user(settings: Settings, edge: str) -> dict[str, Any]:
    """SCRAM-SHA-512 login (Strimzi writes its password to a Secret of the same name)."""
    acls = [
        {
            "resource": {"type": kind, "name": name, "patternType": pattern},
            "operations": list(operations),
            "host": "*",
        }
        for kind, name, pattern, operations in edge_permissions(settings.kafka, edge)
    ]
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaUser",
        "metadata": {"name": kafka_user(edge), "labels": dict(CLUSTER_LABEL)},
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": acls},
        },
    }


def s3_policies(settings: Settings, edges: list[str]) -> dict[str, Any]:
    """One ConfigMap: each edge's scope at the core and on its own site, as IAM policy JSON."""
    layout = Layout(settings.buckets)
    data = {}
    for edge in edges:
        data[f"{edge}-core.json"] = json.dumps(edge_core_policy(layout, edge), indent=2) + "\n"
        data[f"{edge}-site.json"] = json.dumps(edge_site_policy(layout, edge), indent=2) + "\n"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "edgecore-s3-edge-policies"},
        "data": data,
    }


def edge_access_objects(settings: Settings, edges: list[str]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for edge in edges:
        objects += [edge_topic(settings, edge), anomaly_topic(settings, edge), edge_user(settings, edge)]
    return [*objects, s3_policies(settings, edges)]
