"""Edge sync: event-to-answer latency on the real model server, and a 1,000-edge KServe fleet.

Latency: a version is delivered to the edge bucket, then ``model-published`` is sent on
real Kafka; the clock runs from that send until the real edge model server
(``python -m serving.server``, a subprocess) answers a kiosk photo with the new version.
The baseline, measured in the same run, is the download alone: the same version fetched
and verified against its manifest (what the controller must do before anything else).
Goal: end-to-end ≤ 1 s plus download time.

Fleet: N InferenceServices in the in-process-style Kubernetes API server of
``tests/kubeapi.py`` (run here as its own process, validating every write against the
real KServe CRD; a generation becomes Ready ``--ready-delay`` seconds after it was
written), one edge bucket per edge with a new version, one ``model-published`` per
edge, and one controller fleet (``--workers`` threads) verifying every file and
repointing every InferenceService.  The baseline is the same controller with one worker
on a sample of edges, extrapolated to N.  Goal: N = 1,000 in ≤ 30 s.

    .venv/bin/python bench/sync.py                        # both parts, 1,000 edges
    .venv/bin/python bench/sync.py --edges 100 --rounds 1 # a smoke run
    .venv/bin/python bench/sync.py --skip-latency         # fleet only (no TensorFlow)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from kubernetes import client
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edge_sync.fleet import EdgeSpec, KServeSpec, LocalSpec, dump_fleet
from edge_sync.main import ControllerFleet, build_targets
from edge_sync.metrics import SyncMetrics
from edge_sync.targets.kserve import VERSION, api_client
from edge_sync.versions import fetch_verified, newest_gated
from edgecore.events import ModelPublished
from edgecore.layout import MANIFEST, Layout, Location, edge_model_name
from edgecore.manifest import FileEntry, Manifest, entries_for_dir
from edgecore.messaging import EventProducer, ensure_topics
from edgecore.pointer import ModelPointer
from edgecore.settings import Settings
from edgecore.storage import ObjectStore

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))  # the test support: real model versions, the Kubernetes API server

console = Console(stderr=True)
out = Console(width=150)


def bench_settings(tag: str, workers: int) -> Settings:
    return Settings(
        edge_bucket_prefix=f"bench-{tag}-",
        state_dir=Path(tempfile.mkdtemp(prefix="edge-sync-bench-")),
        topic_model_published=f"bench-published-{tag}",
        topic_dead_letter=f"bench-dlq-{tag}",
        topic_training_data_ready=f"bench-ready-{tag}",
        topic_s3_events=f"bench-s3-{tag}",
        edge_sync_poll_s=3600.0,  # only events (and the start-up poll) trigger syncs here
        edge_sync_workers=workers,
        edge_sync_ready_timeout_s=120.0,
    )


def event_for(
    settings: Settings, layout: Layout, edge: str, version: str, files: dict[str, str]
) -> ModelPublished:
    model = edge_model_name(edge)
    return ModelPublished(
        model=model,
        version=version,
        registry_uri=f"s3://{settings.models_bucket}/models/{model}/{version}/",
        edge_uris={edge: layout.edge_model_prefix(edge, model, version).uri},
        files=files,
        labels=["APPLE-RED", "LIME-GREEN", "BLUEBERRY-BOX"],
    )


def drop_buckets(store: ObjectStore, buckets: list[str]) -> None:
    def drop(bucket: str) -> None:
        keys: list[Any] = [{"Key": o.location.key} for o in store.list(Location(bucket, ""))]
        for i in range(0, len(keys), 1000):
            store.client.delete_objects(Bucket=bucket, Delete={"Objects": keys[i : i + 1000]})
        store.client.delete_bucket(Bucket=bucket)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(drop, buckets))


# -- latency: model-published → the local server answers with the new version ------------
def latency(rounds: int, pad_mb: int) -> list[dict[str, float]]:
    from serving_support import LABELS, b64, kiosk_jpeg, running_server, upload_version, write_version

    tag = uuid.uuid4().hex[:8]
    settings = bench_settings(tag, workers=8)
    store, layout = ObjectStore(settings), Layout(settings)
    ensure_topics(settings)
    edge = "bench-shop"
    model = edge_model_name(edge)
    work = settings.state_dir / "versions"
    console.print("[cyan]•[/cyan] training two tiny real models (setup, not timed)")

    def version_dir(number: int) -> Path:
        version = f"v{number:06d}"
        root = Path(write_version(work / version, edge, version, seed=number % 2))
        if pad_mb:
            (root / "padding.bin").write_bytes(os.urandom(pad_mb * 1_048_576))
            old = Manifest.from_bytes((root / MANIFEST).read_bytes(), str(root))
            (root / MANIFEST).write_bytes(old.model_copy(update={"files": entries_for_dir(root)}).to_bytes())
        return root

    v1 = version_dir(1)
    uri = upload_version(store, layout.edge_model_prefix(edge, model, "v000001"), v1)
    pointer = ModelPointer(model=model, version="v000001", uri=uri, synced_at=datetime.now(UTC))
    store.put_bytes(layout.edge_model_pointer(edge, model), pointer.to_bytes())
    probes = settings.state_dir / "probes"
    for k, label in enumerate(LABELS):
        (probes / label).mkdir(parents=True)
        (probes / label / "probe.jpg").write_bytes(kiosk_jpeg(label, 700_000 + k))
    photo = {"instances": [{"image_bytes": {"b64": b64(kiosk_jpeg("LIME-GREEN", 1))}}]}
    results: list[dict[str, float]] = []
    console.print("[cyan]•[/cyan] starting the edge model server")
    with running_server(
        settings,
        edge,
        settings.state_dir / "server",
        capture="false",
        edge_bucket_prefix=settings.edge_bucket_prefix,
    ) as server:
        spec = EdgeSpec(edge=edge, target=LocalSpec(url=server.url, probes=probes))
        fleet = ControllerFleet(settings, [spec], metrics=SyncMetrics())
        stop = threading.Event()
        runner = threading.Thread(target=fleet.run, args=(stop, tag, 1.0), daemon=True)
        runner.start()
        producer = EventProducer(settings, "/bench/publish")
        http = httpx.Client(timeout=30)
        try:
            while fleet.outcomes.get(edge) is None:  # the start-up poll
                time.sleep(0.05)
            for number in range(2, rounds + 2):
                version = f"v{number:06d}"
                root = version_dir(number)
                upload_version(store, layout.edge_model_prefix(edge, model, version), root)
                candidate = newest_gated(store, layout, edge, model)
                assert candidate is not None and candidate.version == version
                baseline = fetch_verified(store, candidate, settings.state_dir / "baseline" / version)
                files = {n: e.sha256 for n, e in candidate.manifest.files.items()}
                started = time.perf_counter()
                producer.publish(
                    settings.topic_model_published, event_for(settings, layout, edge, version, files)
                )
                while True:
                    answer = http.post(f"{server.url}/v1/models/{model}:predict", json=photo).json()
                    if answer.get("model_version") == version:
                        break
                    time.sleep(0.005)
                elapsed = time.perf_counter() - started
                outcome = fleet.outcomes[edge]
                results.append(
                    {
                        "mb": candidate.size / 1_048_576,
                        "download_s": baseline.seconds,
                        "download_mb_s": baseline.mb_per_s,
                        "controller_mb_s": outcome.download_mb_per_s or 0.0,
                        "end_to_end_s": elapsed,
                        "overhead_s": elapsed - baseline.seconds,
                    }
                )
                console.print(f"[cyan]•[/cyan] {version}: answered after {elapsed:.3f} s")
        finally:
            http.close()
            producer.close()
            stop.set()
            runner.join(30)
    drop_buckets(store, [layout.edge_bucket(edge)])
    return results


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4, help="Controller processes in the fleet.")
    parser.add_argument("--workers", type=int, default=32, help="Worker threads per controller process.")
    parser.add_argument("--sample", type=int, default=20, help="Edges in the one-worker baseline.")
    parser.add_argument("--ready-delay", type=float, default=0.5, help="Simulated KServe time to Ready (s).")
    parser.add_argument("--rounds", type=int, default=3, help="Versions rolled out in the latency part.")
    parser.add_argument(
        "--pad-mb", type=int, default=8, help="Extra bytes per version (a MobileNet-sized download)."
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-fleet", action="store_true")
    args = parser.parse_args()

    if not args.skip_latency:
        rows = latency(args.rounds, args.pad_mb)
        table = Table(
            "round",
            "version MB",
            "download s",
            "download MB/s",
            "event→answer s",
            "minus download s",
            "ratio to download",
            title="model-published → local server answers with the new version",
        )
        for i, r in enumerate(rows, 1):
            table.add_row(
                str(i),
                f"{r['mb']:.1f}",
                f"{r['download_s']:.3f}",
                f"{r['download_mb_s']:.0f}",
                f"{r['end_to_end_s']:.3f}",
                f"{r['overhead_s']:.3f}",
                f"{r['end_to_end_s'] / r['download_s']:.1f}×",
            )
        out.print(table)
        worst = max(r["overhead_s"] for r in rows)
        out.print(
            f"goal: event→answer ≤ 1 s + download; worst overhead {worst:.3f} s → "
            f"{'met' if worst <= 1.0 else 'NOT met'}"
        )
    if not args.skip_fleet:
        r = fleet(args.edges, args.processes, args.workers, args.sample, args.ready_delay)
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


if __name__ == "__main__":
    main()
