"""Rollback on KServe: seconds from the repoint of a bad version to the previous one serving again.

One InferenceService in a namespace of the stack's real Kubernetes API server, KServe's
part played by ``testkit.kserve_standin`` (a new URI serves ``--ready-delay`` s after
it is written), driven by the KServe target as the edge overlay's ServiceAccount:

* baseline: a good version, repoint to serving (confirmed through the address);
* a version that fails to load: KServe writes ``Ready`` False, the target restores;
* a version that never comes up: ``Ready`` stays True from before (kserve#4626), only the
  address tells, and the target restores once ``--ready-timeout`` has passed.

Each is timed from the call to its end, with the previous version serving again checked
through the address.  Goal: a bad version rolled back within 60 s.

    .venv/bin/python bench/rollback.py
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from rich.table import Table
from sync_support import console, out

from edge_sync.delivery.targets.address import VersionedInferenceProbe
from edgecore.stack import Stack
from foundation.errors import RolloutFailed
from foundation.layout import edge_model_name
from foundation.settings import Settings
from testkit.delivery import EdgeCluster, edge_cluster

EDGE = "bench-rollback"


def uri(version: str) -> str:
    return f"s3://bench-edge/models/{edge_model_name(EDGE)}/{version}/"


def timed_rollout(cluster: EdgeCluster, version: str, timeout_s: float) -> tuple[float, str]:
    """Seconds the target took on ``version``, and what serves afterwards (asked through the address)."""
    target = cluster.target(EDGE, ready_timeout_s=timeout_s)
    target.state()
    started = time.perf_counter()
    with contextlib.suppress(RolloutFailed):  # what serves afterwards is checked below
        target.apply(uri(version), version)
    elapsed = time.perf_counter() - started
    serving = cluster.kserve.serving(edge_model_name(EDGE)) or "nothing"
    address = cluster.get(EDGE)["status"]["address"]["url"]
    probe, model = VersionedInferenceProbe(), edge_model_name(EDGE)
    confirmed = next((v for v in ("v000001", version) if probe.serves(address, model, v, 5.0)), "?")
    assert serving.rstrip("/").endswith(confirmed), (serving, confirmed)
    return elapsed, confirmed


def measure(rounds: int, ready_delay: float, timeout_s: float) -> dict[str, list[float]]:
    stack = Stack(Settings())
    stack.up()
    times: dict[str, list[float]] = {"good": [], "fails to load": [], "never comes up": []}
    with edge_cluster(stack.kubernetes, Path(tempfile.mkdtemp()), ready_delay) as cluster:
        cluster.add_edge(EDGE, uri("v000001"))
        cluster.kserve.caught_up(edge_model_name(EDGE))
        for n in range(rounds):
            console.print(f"[cyan]•[/cyan] round {n + 1} of {rounds}")
            good = f"v{2 + n:06d}"
            elapsed, serving = timed_rollout(cluster, good, timeout_s)
            assert serving == good, serving
            times["good"].append(elapsed)
            cluster.target(EDGE).apply(uri("v000001"), "v000001")  # back, for the next case
            bad = f"v{100 + n:06d}"
            cluster.kserve.fail_uris.add(uri(bad))
            elapsed, serving = timed_rollout(cluster, bad, timeout_s)
            assert serving == "v000001", serving
            times["fails to load"].append(elapsed)
            cluster.kserve.hold.set()
            stuck = f"v{200 + n:06d}"
            try:
                elapsed, serving = timed_rollout(cluster, stuck, timeout_s)
            finally:
                cluster.kserve.hold.clear()  # the held rollouts go on: v000001 again, as restored
            times["never comes up"].append(elapsed)
    return times


def report(times: dict[str, list[float]], timeout_s: float) -> None:
    base = statistics.median(times["good"])
    table = Table("version", "median s", "worst s", "× a good rollout", title="rollouts and rollbacks")
    for case, values in times.items():
        median = statistics.median(values)
        table.add_row(case, f"{median:.2f}", f"{max(values):.2f}", f"{median / base:.1f}×")
    out.print(table)
    worst = max(max(times["fails to load"]), max(times["never comes up"]))
    out.print(
        f"goal: a bad version rolled back within 60 s (ready timeout {timeout_s:.0f} s) → "
        f"worst {worst:.1f} s, {'met' if worst <= 60 else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Seconds to roll a bad version back on KServe.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ready-delay", type=float, default=0.5, help="KServe stand-in's time to serve (s).")
    parser.add_argument("--ready-timeout", type=float, default=Settings().delivery.ready_timeout_s)
    args = parser.parse_args()
    report(measure(args.rounds, args.ready_delay, args.ready_timeout), args.ready_timeout)


if __name__ == "__main__":
    main()
