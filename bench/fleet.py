"""Fleet: N InferenceServices in the in-process-style Kubernetes API server of
``tests/kubeapi.py`` (run here as its own process, validating every write against the
real KServe CRD; a generation becomes Ready ``--ready-delay`` seconds after it was
written), one edge bucket per edge with a new version, one ``model-published`` per
edge, and one controller fleet (``--workers`` threads) verifying every file and
repointing every InferenceService.  The baseline is the same controller with one worker
on a sample of edges, extrapolated to N.  Goal: N = 1,000 in ≤ 30 s.

    .venv/bin/python bench/fleet.py --edges 1000 --processes 4 --workers 32
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
from kubernetes import client
from rich.progress import Progress
from rich.table import Table
from sync_support import TESTS, bench_settings, console, drop_buckets, event_for, out

from edge_sync.fleet import EdgeSpec, KServeSpec, dump_fleet
from edge_sync.main import ControllerFleet, build_targets
from edge_sync.targets.kserve import VERSION, api_client
from edgecore.layout import MANIFEST, Layout, Location, edge_model_name
from edgecore.manifest import FileEntry, Manifest
from edgecore.messaging import EventProducer, ensure_topics
from edgecore.settings import Settings
from edgecore.storage import ObjectStore


# -- fleet: N InferenceServices repointed and verified ----------------------------------------
def small_version(version: str) -> dict[str, bytes]:
    seed = hashlib.sha256(version.encode()).digest()
    blob = (seed * 2048)[: 64 * 1024]
    return {
        "model.tflite": blob,
        "saved_model/saved_model.pb": blob[:16384],
        "saved_model/variables/variables.index": seed,
        "labels.json": b'["APPLE-RED", "LIME-GREEN", "BLUEBERRY-BOX"]',
        "catalogue.json": b'{"edge": "bench", "products": []}',
        "model_card.md": f"# bench {version}\n".encode(),
    }


def deliver(store: ObjectStore, layout: Layout, edge: str, version: str, files: dict[str, bytes]) -> str:
    prefix = layout.edge_model_prefix(edge, edge_model_name(edge), version)
    store.ensure_bucket(prefix.bucket)
    for name, data in files.items():
        store.put_bytes(Location(prefix.bucket, prefix.key + name), data)
    manifest = Manifest(
        kind="model",
        name=edge_model_name(edge),
        version=version,
        files={n: FileEntry(sha256=hashlib.sha256(d).hexdigest(), size=len(d)) for n, d in files.items()},
    )
    store.put_bytes(Location(prefix.bucket, prefix.key + MANIFEST), manifest.to_bytes(), "application/json")
    return prefix.uri


def controller_env(settings: Settings) -> dict[str, str]:
    """The bench's settings for a controller subprocess (``edgecore edges run``)."""
    env = dict(os.environ)
    for field in (
        "edge_bucket_prefix",
        "state_dir",
        "topic_model_published",
        "topic_dead_letter",
        "topic_training_data_ready",
        "topic_s3_events",
        "edge_sync_poll_s",
        "edge_sync_workers",
        "edge_sync_ready_timeout_s",
    ):
        env[f"EDGECORE_{field.upper()}"] = str(getattr(settings, field))
    return env


def cpu_seconds(proc: subprocess.Popen[bytes]) -> float:
    times = psutil.Process(proc.pid).cpu_times()
    return float(times.user + times.system)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def startup_passes(port: int) -> int:
    """Edges a controller has reconciled at least once (each sets its lag gauge)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:
        return 0
    return sum(1 for line in text.splitlines() if line.startswith("edgecore_edge_sync_lag_seconds{"))


def fleet(edges: int, processes: int, workers: int, sample: int, ready_delay: float) -> dict[str, float]:
    tag = uuid.uuid4().hex[:8]
    settings = bench_settings(tag, workers)
    store, layout = ObjectStore(settings), Layout(settings)
    ensure_topics(settings)
    kubeconfig = settings.state_dir / "kubeconfig"
    context = "edge-fleet"
    api_server = subprocess.Popen(
        [
            sys.executable,
            str(TESTS / "kubeapi.py"),
            "--kubeconfig",
            str(kubeconfig),
            "--context",
            context,
            "--ready-delay",
            str(ready_delay),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert api_server.stdout is not None
    url = api_server.stdout.readline().strip()
    console.print(f"[cyan]•[/cyan] Kubernetes API server (CRD-validating) at {url}")
    names = [f"edge-{i:04d}" for i in range(edges)]
    base_names = [f"base-{i:04d}" for i in range(sample)]
    everyone = names + base_names
    v2 = small_version("v000002")
    files = {n: hashlib.sha256(d).hexdigest() for n, d in v2.items()}
    crd = client.CustomObjectsApi(api_client(context, str(kubeconfig), pool_size=32))
    controllers: list[subprocess.Popen[bytes]] = []

    def specs_of(edge_names: list[str]) -> list[EdgeSpec]:
        return [
            EdgeSpec(
                edge=e,
                target=KServeSpec(
                    context=context, kubeconfig=kubeconfig, namespace="stores", name=edge_model_name(e)
                ),
            )
            for e in edge_names
        ]

    def synced() -> int:
        items = crd.list_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", "stores", "inferenceservices"
        )
        return sum(
            1
            for i in items["items"]
            if i["metadata"]["name"].startswith("edge-")
            and i["metadata"]["annotations"].get(VERSION) == "v000002"
            and i["metadata"]["annotations"].get("edgecore.io/synced-at")
            and i["status"]["observedGeneration"] == i["metadata"]["generation"]
        )

    try:
        with Progress(console=console) as progress, ThreadPoolExecutor(32) as pool:
            task = progress.add_task("InferenceServices serving v000001", total=len(everyone))

            def create(edge: str) -> None:
                v1 = layout.edge_model_prefix(edge, edge_model_name(edge), "v000001").uri
                body = {
                    "apiVersion": "serving.kserve.io/v1beta1",
                    "kind": "InferenceService",
                    "metadata": {
                        "name": edge_model_name(edge),
                        "namespace": "stores",
                        "annotations": {
                            VERSION: "v000001",
                            "edgecore.io/synced-at": datetime.now(UTC).isoformat(),
                        },
                    },
                    "spec": {"predictor": {"model": {"modelFormat": {"name": "tflite"}, "storageUri": v1}}},
                }
                crd.create_namespaced_custom_object(
                    "serving.kserve.io", "v1beta1", "stores", "inferenceservices", body
                )
                store.ensure_bucket(layout.edge_bucket(edge))
                progress.advance(task)

            list(pool.map(create, everyone))

        # The controller fleet: `edgecore edges run` processes, each with a shard of the edges.
        env = controller_env(settings)
        edgecore = Path(sys.executable).with_name("edgecore")
        ports: list[int] = []
        for i in range(processes):
            shard = settings.state_dir / f"shard-{i}.json"
            dump_fleet(specs_of(names[i::processes]), shard)
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

        deadline = time.monotonic() + 180
        while sum(startup_passes(port) for port in ports) < edges:  # each edge reconciled once
            assert time.monotonic() < deadline, f"no start-up pass: see {settings.state_dir}/controller-*.log"
            time.sleep(0.5)

        with Progress(console=console) as progress, ThreadPoolExecutor(32) as pool:
            task = progress.add_task("v000002 delivered to each edge bucket", total=len(everyone))

            def publish(edge: str) -> None:
                deliver(store, layout, edge, "v000002", v2)
                progress.advance(task)

            list(pool.map(publish, everyone))

        # Baseline: one worker, in this process, syncing the sample edges one after the other.
        one = settings.model_copy(update={"edge_sync_workers": 1})
        sequential = ControllerFleet(
            one, specs_of(base_names), build_targets(one, specs_of(base_names), store, layout)
        )
        started = time.perf_counter()
        base_outcomes = sequential.reconcile_all()
        per_edge = (time.perf_counter() - started) / max(1, sample)
        sequential.close()
        assert all(o.action == "rolled-out" for o in base_outcomes), base_outcomes[:3]

        assert synced() == 0, "a controller synced before any model-published event"

        producer = EventProducer(settings, "/bench/publish")
        cpu_before = sum(cpu_seconds(p) for p in controllers)
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda e: producer.publish(
                        settings.topic_model_published, event_for(settings, layout, e, "v000002", files)
                    ),
                    names,
                )
            )
        published = time.perf_counter() - started
        with Progress(console=console) as progress:
            task = progress.add_task(f"{edges} edges repointed and verified", total=edges)
            while (count := synced()) < edges:
                progress.update(task, completed=count)
                assert time.perf_counter() - started < 600, f"only {count} edges synced after 600 s"
                time.sleep(0.25)
            progress.update(task, completed=edges)
        elapsed = time.perf_counter() - started
        cpu = sum(cpu_seconds(p) for p in controllers) - cpu_before
        producer.close()
        return {
            "edges": edges,
            "processes": processes,
            "workers": workers,
            "ready_delay_s": ready_delay,
            "publish_s": published,
            "fleet_s": elapsed,
            "cpu_ms_per_edge": cpu / edges * 1000,
            "per_edge_sequential_s": per_edge,
            "sequential_estimate_s": per_edge * edges,
        }
    finally:
        for proc in controllers:
            proc.terminate()
        for proc in controllers:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        api_server.terminate()
        api_server.wait(10)
        console.print("[cyan]•[/cyan] dropping the benchmark buckets")
        drop_buckets(store, [layout.edge_bucket(e) for e in everyone])


def report_fleet(r: dict[str, float]) -> None:
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
    out.print(f"goal: {r['edges']} edges in ≤ 30 s → {'met' if r['fleet_s'] <= 30 else 'NOT met'}")
    cpu_s = r["cpu_ms_per_edge"] * r["edges"] / 1000
    cpus = os.cpu_count() or 1
    out.print(
        f"load average at the end: {os.getloadavg()[0]:.1f} on {cpus} CPUs; the controllers used "
        f"{cpu_s:.0f} CPU-s, i.e. ≥ {cpu_s / cpus:.0f} s on this machine even if it were idle"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description="1,000 KServe InferenceServices repointed by a controller fleet."
    )
    parser.add_argument("--edges", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4, help="Controller processes in the fleet.")
    parser.add_argument("--workers", type=int, default=32, help="Worker threads per controller process.")
    parser.add_argument("--sample", type=int, default=20, help="Edges in the one-worker baseline.")
    parser.add_argument("--ready-delay", type=float, default=0.5, help="Simulated KServe time to Ready (s).")
    args = parser.parse_args()
    report_fleet(fleet(args.edges, args.processes, args.workers, args.sample, args.ready_delay))


if __name__ == "__main__":
    main()
