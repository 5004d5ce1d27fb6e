"""The processes a demo run starts, and how each is known to be ready.

The core's front door, listener and status page, and each store's gateway and sync
controller, each an ``edgecore`` command under the supervisor with only its own site's
environment (a store's processes never see the core's settings, nor the core a store's).
"""

from __future__ import annotations

from edgecore.demo.supervisor import Supervisor, http_ok
from edgecore.demo.world import World
from edgecore.enrolment import issue_operator

REPORT_S = 5.0
"""Stores report every few seconds in the demo, so the core page's plots fill while one watches."""


def start_services(world: World, sup: Supervisor, epochs: int) -> None:
    """Launch every service of the run side by side (the caller waits for them to be ready)."""
    settings = world.settings
    # its own consumer group and ledger, like its own topics: nothing of an earlier run
    # (offsets, members still timing out) can hold this one up; the core page reads its runs
    group = f"edgecore-training-listener-{world.run_id}"
    door_ready = http_ok(f"{settings.door.url}/healthz", verify=str(settings.ca_file))
    sup.launch("door", ["core", "door"], world.env(), door_ready)
    sup.launch(
        "listener",
        ["edge", "listen", "--launcher", "local", "--epochs", str(epochs), "--group", group],
        world.env(),
        http_ok(f"http://127.0.0.1:{settings.listener.metrics_port}/metrics"),
    )
    issue_operator(settings, "demo-operator", world.operator_token_file)
    sup.launch("page", ["core", "page", "--group", group], world.env(), http_ok(world.core_page_url))
    for edge, ports in world.edges.items():
        site = world.sites[edge]
        sup.launch(
            f"gateway-{edge}",
            ["edge", "gateway", "--edge", edge, "--mqtt", "--sensors"],
            site.environment(uplink={"gateway_port": ports.gateway}),
            http_ok(f"{world.gateway_url(edge)}/healthz"),
        )
        sup.launch(
            f"sync-{edge}",
            ["edges", "run", "--edge", edge, "--metrics-port", str(ports.sync_metrics)],
            site.environment(delivery={"report_s": REPORT_S}),
            http_ok(f"http://127.0.0.1:{ports.sync_metrics}/metrics"),
        )
