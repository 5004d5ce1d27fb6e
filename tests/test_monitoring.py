"""The observability overlay watches what the services export: scrape targets, alert rules, dashboard."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry

import serving.metrics  # noqa: F401  (registers the predictor's metrics in the default registry)
from edge_sync.delivery.metrics import SyncMetrics
from edge_sync.uplink.metrics import UplinkMetrics
from edgecore.kustomize import build
from edgecore.stack import Stack
from edgecore.stack.settings import StackSettings
from foundation.settings import Settings
from pipelines.launchers import DryRunLauncher
from pipelines.listener import Listener, build_ledger
from serving.metrics import SensorMetrics

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"
METRIC = re.compile(r"\bedgecore_[a-z0-9_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported(registries: list[CollectorRegistry]) -> set[str]:
    """Every series name the services' registries can expose, whether or not it has a sample yet."""
    return {
        family.name + suffix
        for registry in registries
        for family in registry.collect()
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every alert rule and dashboard panel."""
    observability = build(StackSettings(), MANIFESTS / "observability")
    for rules in (o for o in observability if o["kind"] == "PrometheusRule"):
        for group in rules["spec"]["groups"]:
            for rule in group["rules"]:
                yield f"rule {rule['alert']}", rule["expr"]
    dashboard = json.loads((MANIFESTS / "observability" / "edgecore-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']}", target["expr"]


def test_every_metric_an_alert_or_a_panel_queries_is_one_a_service_exports(
    stack: Stack, settings: Settings, tmp_path: Path
) -> None:
    listener = Listener(
        settings.kafka, 0.0, "unused", DryRunLauncher(tmp_path), build_ledger(settings, "metric-names")
    )
    names = exported(
        [
            SyncMetrics().registry,
            listener.registry,
            UplinkMetrics("gateway").registry,
            UplinkMetrics("receiver").registry,
            SensorMetrics("any").registry,
            prometheus_client.REGISTRY,
        ]
    )

    unknown = [(where, m) for where, expr in queries() for m in METRIC.findall(expr) if m not in names]

    assert unknown == []


def test_there_are_alerts_for_sync_lag_rollbacks_dead_letters_backlog_refusals_and_machines() -> None:
    watched = {m for where, expr in queries() if where.startswith("rule") for m in METRIC.findall(expr)}

    assert {
        "edgecore_edge_sync_lag_seconds",
        "edgecore_edge_sync_rollbacks_total",
        "edgecore_listener_dead_lettered_total",
        "edgecore_gateway_backlog_sets",
        "edgecore_receiver_refusals_total",
        "edgecore_sensor_alarm_raised",
        "edgecore_sensor_windows_total",
    } <= watched


def test_every_service_monitor_scrapes_a_port_its_services_name() -> None:
    services: list[dict[str, Any]] = [
        o
        for overlay in ("core", "edge")
        for o in build(StackSettings(), MANIFESTS / overlay)
        if o["kind"] == "Service"
    ]
    monitors = [
        o for o in build(StackSettings(), MANIFESTS / "observability") if o["kind"] == "ServiceMonitor"
    ]

    def ports(monitor: dict[str, Any]) -> set[str]:
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        return {
            p["name"]
            for s in services
            if s["metadata"]["namespace"] == monitor["metadata"]["namespace"]
            and wanted <= s["metadata"].get("labels", {}).items()
            for p in s["spec"]["ports"]
        }

    missing = [
        (m["metadata"]["name"], e["port"])
        for m in monitors
        for e in m["spec"]["endpoints"]
        if "port" in e and e["port"] not in ports(m)
    ]
    assert missing == []
