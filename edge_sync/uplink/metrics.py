"""What the uplink's HTTP services count, served on a /metrics port of their own.

The front door faces every edge and the gateway every device of a store: their metrics
are not for those callers, so they listen apart, on a host that is loopback unless set
(the Prometheus scrape reaches them in-cluster).  A refusal is counted by status and
error class, never with anything the caller sent.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class UplinkMetrics:
    def __init__(self, service: str) -> None:
        """``service`` (``receiver`` or ``gateway``) prefixes every name: ``edgecore_receiver_*``."""
        self.registry = CollectorRegistry()
        self.refusals = Counter(
            f"edgecore_{service}_refusals",
            "Requests answered with an error, by HTTP status and error class.",
            ["status", "error"],
            registry=self.registry,
        )
        self.sets = Counter(
            f"edgecore_{service}_sets",
            "Image sets completed (gateway) or stored (receiver).",
            registry=self.registry,
        )
        self.images = Counter(
            f"edgecore_{service}_images", "Images accepted into a set.", registry=self.registry
        )

        self.backlog = (
            Gauge(
                f"edgecore_{service}_backlog_sets",
                "Sets waiting to ship to the core.",
                registry=self.registry,
            )
            if service == "gateway"
            else None
        )
        """The gateway's outbox, read at each scrape; the receiver has none."""

    def refused(self, status: int, error: str) -> None:
        self.refusals.labels(status=str(status), error=error).inc()

    def include(self, other: CollectorRegistry) -> None:
        """Serve ``other``'s series too: the sensor monitor the gateway runs keeps its own
        (``serving.metrics.SensorMetrics``), and a process has one /metrics port."""
        self.registry.register(other)  # a registry collects like any collector

    def serve(self, port: int, host: str) -> None:
        start_http_server(port, addr=host, registry=self.registry)
