"""What the stack's real kube-apiserver spends per request on an InferenceService, one request at a
time: an estimate of what ``bench/fleet.py``'s every edge costs the API server (one read and four
writes: the repoint, KServe's two status writes, the confirmation stamp), which that bench also
measures in place.

One InferenceService in a namespace of its own, KServe's stand-in watching it (as in the
fleet, so every write also feeds a watch); ``--requests`` reads and as many merge patches
of one annotation, sent as the edge overlay's ServiceAccount.  The figure is the API
server process's CPU per request; the baseline is a read, which every row is divided by.

    .venv/bin/python bench/apiserver_cost.py --requests 400
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from measure import cpu_seconds
from rich.table import Table
from sync_support import out

from edge_sync.delivery.targets.kserve import API_VERSION, GROUP, PLURAL
from edgecore.stack import Stack
from foundation.settings import Settings
from testkit.delivery import edge_cluster

EDGE = "cost"


def per_request(pid: int, requests: int, send: Callable[[int], object]) -> tuple[float, float]:
    """The API server's CPU ms and the wall ms per request, ``send`` called ``requests`` times."""
    cpu, started = cpu_seconds(pid), time.perf_counter()
    for i in range(requests):
        send(i)
    return (cpu_seconds(pid) - cpu) / requests * 1000, (time.perf_counter() - started) / requests * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU the API server spends per InferenceService request.")
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    stack = Stack(Settings())
    pid = stack.kubernetes.process.pid()
    if pid is None:
        raise SystemExit("the stack's Kubernetes API server is not running: edgecore stack up")
    with (
        tempfile.TemporaryDirectory(prefix="apiserver-cost-") as folder,  # its kubeconfig holds a token
        edge_cluster(stack.kubernetes, Path(folder)) as cluster,
    ):
        cluster.add_edge(EDGE, "s3://bench/models/v000001/")
        target = cluster.target(EDGE)
        api = target._api  # the ServiceAccount's own client, as the controller sends
        name = target.name

        def patch(i: int) -> object:
            body = {"metadata": {"annotations": {"bench.edgecore.io/n": str(i)}}}
            return api.patch_namespaced_custom_object(
                GROUP, API_VERSION, cluster.namespace, PLURAL, name, body, field_validation="Strict"
            )

        rows = {
            "read (GET)": per_request(pid, args.requests, lambda _: target.get()),
            "write (merge PATCH, strict)": per_request(pid, args.requests, patch),
        }
    base = rows["read (GET)"][0]
    table = Table("request", "API server CPU ms", "÷ a read", "wall ms", title="kube-apiserver per request")
    for label, (cpu_ms, wall_ms) in rows.items():
        table.add_row(label, f"{cpu_ms:.2f}", f"{cpu_ms / base:.1f}×", f"{wall_ms:.2f}")
    out.print(table)
    edge_ms = base + 4 * rows["write (merge PATCH, strict)"][0]
    cpus = len(os.sched_getaffinity(0))
    out.print(
        f"one edge's rollout (1 read, 4 writes) ≈ {edge_ms:.1f} ms of API server CPU, one request at a "
        f"time; 1,000 edges ≈ {edge_ms / cpus:.1f} s on {cpus} CPUs for the API server alone"
    )


if __name__ == "__main__":
    main()
