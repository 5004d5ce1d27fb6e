"""Fleet: N InferenceServices in a namespace of the stack's real Kubernetes API server
(KServe's part played by ``testkit.kserve_standin``: a new storage URI serves
``--ready-delay`` seconds after it was written), one edge bucket per edge with a new
version, one ``model-published`` per edge, and one controller fleet (``--workers``
threads) verifying every file, repointing every InferenceService as the edge overlay's
ServiceAccount and confirming the new version through each one's address.  The
baseline is the same controller with one worker on a sample of edges, extrapolated to N.
Goal: N = 1,000 in ≤ 10 s.

    .venv/bin/python bench/fleet.py --edges 1000 --workers 32
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from fleet_cluster import (
    create_services,
    deliver_everywhere,
    edge_specs,
    small_version,
    synced,
    wait_for_pods,
)
from measure import cpu_seconds
from rich.progress import Progress
from rich.table import Table
from sync_support import bench_settings, console, drop_buckets, event_for, out

from edge_sync.delivery.edges import dump_fleet
from edge_sync.delivery.service import build_fleet
from edgecore.stack import Stack
from foundation.layout import Layout
from foundation.messaging import EventProducer, ensure_topics
from foundation.settings import Settings
from foundation.storage.store import ObjectStore
from testkit.delivery import EdgeCluster, edge_cluster
from testkit.uplink import free_port


# -- fleet: N InferenceServices repointed and verified ----------------------------------------
def controller_env(settings: Settings) -> dict[str, str]:
    """The bench's settings for a controller subprocess (``edgecore edges run``)."""
    return {**os.environ, **settings.environment()}


def startup_passes(port: int) -> int:
    """Edges a controller has reconciled at least once (each sets its lag gauge)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:
        return 0
    return sum(1 for line in text.splitlines() if line.startswith("edgecore_edge_sync_lag_seconds{"))


def services(stack: Stack) -> dict[str, int]:
    """The stack's processes a rollout also costs CPU in: the pids of the API server, etcd and MinIO."""
    pids = {
        "kube-apiserver": stack.kubernetes.process.pid(),
        "etcd": stack.kubernetes.etcd.pid(),
        "MinIO": stack.minio.process.pid(),
    }
    return {name: pid for name, pid in pids.items() if pid is not None}


def isvc_requests(stack: Stack) -> dict[str, float]:
    """Requests the API server has answered on InferenceServices since it started, by verb and code."""
    with stack.kubernetes.http() as http:
        text = http.get("/metrics").text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{") and 'resource="inferenceservices"' in line:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            key = " ".join(filter(None, (labels.get("verb"), labels.get("subresource"), labels.get("code"))))
            counts[key] = counts.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def start_controllers(
    settings: Settings,
    tag: str,
    cluster: EdgeCluster,
    names: list[str],
    processes: int,
    controllers: list[subprocess.Popen[bytes]],
) -> list[int]:
    """The controller fleet: ``edgecore edges run`` processes, each with a shard of the edges.

    Each process is appended to ``controllers`` as soon as it starts, so that the caller
    stops the ones already running if a later one fails; returns their metrics ports.
    """
    env = controller_env(settings)
    edgecore = Path(sys.executable).with_name("edgecore")
    ports: list[int] = []
    for i in range(processes):
        shard = settings.state_dir / f"shard-{i}.json"
        dump_fleet(edge_specs(cluster, names[i::processes]), shard)
        ports.append(free_port())
        controllers.append(
            subprocess.Popen(
                [
                    str(edgecore),
                    "edges",
                    "run",
                    "--fleet",
                    str(shard),
                    "--group",
                    f"{tag}-{i}",
                    "--metrics-port",
                    str(ports[-1]),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(settings.state_dir / f"controller-{i}.log").open("wb"),
            )
        )
    return ports


def wait_for_startup(ports: list[int], edges: int, state_dir: Path) -> None:
    """Wait until each edge was reconciled once: the timed part measures events, not the start-up poll."""
    deadline = time.monotonic() + 180
    while sum(startup_passes(port) for port in ports) < edges:
        assert time.monotonic() < deadline, f"no start-up pass: see {state_dir}/controller-*.log"
        time.sleep(0.5)


def sequential_per_edge(
    settings: Settings, cluster: EdgeCluster, base_names: list[str], sample: int
) -> float:
    """Baseline: one worker, in this process, syncing the sample edges one after the other.

    Seconds per edge, extrapolated to N by the caller: what a fleet must beat.
    """
    one = settings.updated(delivery={"workers": 1})
    sequential = build_fleet(one, edge_specs(cluster, base_names))
    started = time.perf_counter()
    base_outcomes = sequential.reconcile_all()
    per_edge = (time.perf_counter() - started) / max(1, sample)
    sequential.close()
    assert all(o.action == "rolled-out" for o in base_outcomes), base_outcomes[:3]
    return per_edge


def wait_until_synced(cluster: EdgeCluster, edges: int, started: float) -> None:
    """Poll the API server until every edge is repointed and confirmed (bounded, so a stuck run fails)."""
    with Progress(console=console) as progress:
        task = progress.add_task(f"{edges} edges repointed and verified", total=edges)
        while (count := synced(cluster)) < edges:
            progress.update(task, completed=count)
            assert time.perf_counter() - started < 600, f"only {count} edges synced after 600 s"
            time.sleep(0.25)
        progress.update(task, completed=edges)


def publish_and_wait(
    stack: Stack,
    settings: Settings,
    layout: Layout,
    cluster: EdgeCluster,
    names: list[str],
    files: dict[str, str],
    controllers: list[subprocess.Popen[bytes]],
) -> dict[str, Any]:
    """The timed part: one ``model-published`` per edge, until every edge serves the new version.

    Returns the seconds to publish and to the last edge, the CPU seconds the controllers
    and each of the stack's services spent meanwhile (the cost a machine pays per edge),
    and the API server's requests on InferenceServices meanwhile.
    """
    edges = len(names)
    producer = EventProducer(settings.kafka, "/bench/publish")
    pids = {
        **services(stack),
        "this bench (publisher, KServe's stand-in and its predictors)": os.getpid(),
        **{f"controller {i}": p.pid for i, p in enumerate(controllers)},
    }
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    requests_before = isvc_requests(stack)
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda e: producer.publish(
                    settings.kafka.topic_model_published, event_for(settings, layout, e, "v000002", files)
                ),
                names,
            )
        )
    published = time.perf_counter() - started
    wait_until_synced(cluster, edges, started)
    elapsed = time.perf_counter() - started
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    requests = {k: v - requests_before.get(k, 0.0) for k, v in isvc_requests(stack).items()}
    producer.close()
    return {
        "publish_s": published,
        "fleet_s": elapsed,
        "cpu_s": cpu,
        "requests": {k: v for k, v in requests.items() if v},
    }


def stop_processes(controllers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to all controllers first, so they shut down together; kill the ones that hang."""
    for proc in controllers:
        proc.terminate()
    for proc in controllers:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fleet(edges: int, processes: int, workers: int, sample: int, ready_delay: float) -> dict[str, Any]:
    """N edges repointed by the controller fleet, against one worker extrapolated to N.

    The steps run in this order so that only the events and the rollouts they cause are
    timed: everything the controllers need exists, and each has done its start-up poll.
    """
    tag = uuid.uuid4().hex[:8]
    settings = bench_settings(tag, workers)
    store, layout = ObjectStore(settings.s3), Layout(settings.buckets)
    ensure_topics(settings.kafka)
    stack = Stack(Settings())  # the running stack's own state, not this run's
    stack.up()
    names = [f"edge-{i:04d}" for i in range(edges)]
    base_names = [f"base-{i:04d}" for i in range(sample)]
    everyone = names + base_names
    v2 = small_version("v000002")
    files = {n: hashlib.sha256(d).hexdigest() for n, d in v2.items()}
    controllers: list[subprocess.Popen[bytes]] = []
    with edge_cluster(stack.kubernetes, settings.state_dir, ready_delay) as cluster:
        console.print(f"[cyan]•[/cyan] namespace {cluster.namespace} of the stack's Kubernetes API server")
        try:
            create_services(cluster, store, layout, everyone)
            wait_for_pods(cluster, everyone)
            ports = start_controllers(settings, tag, cluster, names, processes, controllers)
            wait_for_startup(ports, edges, settings.state_dir)
            deliver_everywhere(store, layout, everyone, v2)
            per_edge = sequential_per_edge(settings, cluster, base_names, sample)
            assert synced(cluster) == 0, "a controller synced before any model-published event"
            timed = publish_and_wait(stack, settings, layout, cluster, names, files, controllers)
            controllers_cpu = sum(v for k, v in timed["cpu_s"].items() if k.startswith("controller "))
            return {
                "edges": edges,
                "processes": processes,
                "workers": workers,
                "ready_delay_s": ready_delay,
                **timed,
                "cpu_ms_per_edge": controllers_cpu / edges * 1000,
                "per_edge_sequential_s": per_edge,
                "sequential_estimate_s": per_edge * edges,
            }
        finally:
            stop_processes(controllers)
            console.print("[cyan]•[/cyan] dropping the benchmark buckets")
            drop_buckets(store, [layout.edge_bucket(e) for e in everyone])


def report_fleet(r: dict[str, Any]) -> None:
    """The fleet against its baseline and goal, and where the machine's CPU went meanwhile.

    The CPU table tells a slow run on a loaded machine from a slow controller, and shows
    the floor the API server alone sets on this machine.
    """
    table = Table(
        "edges",
        "processes × workers",
        "Ready delay s",
        "events published s",
        "fleet s",
        "controllers' CPU per edge ms",
        "one worker, per edge s",
        "one worker, estimated s",
        "speed-up",
        title="controller fleet",
    )
    table.add_row(
        str(r["edges"]),
        f"{r['processes']} × {r['workers']}",
        f"{r['ready_delay_s']:.2f}",
        f"{r['publish_s']:.2f}",
        f"{r['fleet_s']:.2f}",
        f"{r['cpu_ms_per_edge']:.0f}",
        f"{r['per_edge_sequential_s']:.3f}",
        f"{r['sequential_estimate_s']:.0f}",
        f"{r['sequential_estimate_s'] / r['fleet_s']:.0f}×",
    )
    out.print(table)
    out.print(f"goal: {r['edges']} edges in ≤ 10 s → {'met' if r['fleet_s'] <= 10 else 'NOT met'}")
    report_cost(r)


def report_cost(r: dict[str, Any]) -> None:
    """CPU per process during the timed part, and the API server's requests per edge."""
    edges, cpus = r["edges"], len(os.sched_getaffinity(0))
    cost = Table("process", "CPU s", "per edge ms", "≥ s on this machine", title="CPU during the rollout")
    for name, seconds in sorted(r["cpu_s"].items(), key=lambda kv: -kv[1]):
        cost.add_row(name, f"{seconds:.1f}", f"{seconds / edges * 1000:.1f}", f"{seconds / cpus:.1f}")
    total = sum(r["cpu_s"].values())
    cost.add_row("all of these", f"{total:.1f}", f"{total / edges * 1000:.1f}", f"{total / cpus:.1f}")
    out.print(cost)
    per_edge = ", ".join(f"{k} {v / edges:.2f}" for k, v in sorted(r["requests"].items()))
    out.print(f"API server requests on InferenceServices per edge: {per_edge}")
    out.print(f"load average at the end: {os.getloadavg()[0]:.1f} on {cpus} CPUs")


def add_fleet_options(parser: argparse.ArgumentParser) -> None:
    """The fleet's options, shared with ``bench/sync.py`` so both scripts run the same fleet."""
    parser.add_argument("--edges", type=int, default=1000)
    parser.add_argument(
        "--processes",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="Controller processes (default: one per CPU).",
    )
    parser.add_argument("--workers", type=int, default=32, help="Worker threads per controller process.")
    parser.add_argument("--sample", type=int, default=20, help="Edges in the one-worker baseline.")
    parser.add_argument(
        "--ready-delay", type=float, default=0.5, help="KServe stand-in's time from a new URI to serving (s)."
    )


def run_fleet(args: argparse.Namespace) -> None:
    """Measure and report the fleet with the options of :func:`add_fleet_options`."""
    report_fleet(fleet(args.edges, args.processes, args.workers, args.sample, args.ready_delay))


def main() -> None:
    """The fleet part of ``bench/sync.py`` on its own (no TensorFlow, no model server)."""
    parser = argparse.ArgumentParser(
        description="1,000 KServe InferenceServices repointed by a controller fleet."
    )
    add_fleet_options(parser)
    run_fleet(parser.parse_args())


if __name__ == "__main__":
    main()
