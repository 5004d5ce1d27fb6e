"""Prometheus metrics of the edge sync controllers: lag, failures, rollbacks, rollouts.

A :class:`SyncMetrics` owns its registry, so tests and benchmarks read their own numbers
and a process serves exactly one ``/metrics`` endpoint (``serve``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class SyncMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.lag = Gauge(
            "edgecore_edge_sync_lag_seconds",
            "Seconds since the newest gated version was published, while the edge does not serve it.",
            ["edge"],
            registry=self.registry,
        )
        self.versions_behind = Gauge(
            "edgecore_edge_sync_versions_behind",
            "Gated versions newer than the one the edge serves.",
            ["edge"],
            registry=self.registry,
        )
        self.pinned = Gauge(
            "edgecore_edge_sync_pinned",
            "1 while an operator's rollback holds the edge on its version (not synced, not lagging).",
            ["edge"],
            registry=self.registry,
        )
        self.failures = Counter(
            "edgecore_edge_sync_failures_total",
            "Syncs that did not deliver the newest version, by reason (integrity, rollout, unavailable).",
            ["edge", "reason"],
            registry=self.registry,
        )
        self.rollbacks = Counter(
            "edgecore_edge_sync_rollbacks_total",
            "Rollouts undone because the new version did not become healthy.",
            ["edge"],
            registry=self.registry,
        )
        self.rollouts = Counter(
            "edgecore_edge_sync_rollouts_total",
            "Versions confirmed healthy on their target.",
            ["edge"],
            registry=self.registry,
        )
        self.last_sync = Gauge(
            "edgecore_edge_sync_last_success_timestamp_seconds",
            "When the edge last confirmed serving the newest version.",
            ["edge"],
            registry=self.registry,
        )
        self.download_bytes = Counter(
            "edgecore_edge_sync_download_bytes_total",
            "Model bytes downloaded and verified against manifests.",
            ["edge"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "edgecore_edge_sync_rollout_seconds",
            "From the start of a sync to the target confirming the new version.",
            registry=self.registry,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
        )

    def value(self, name: str, **labels: str) -> float:
        """One sample's value (0 when absent), for status output and tests."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
