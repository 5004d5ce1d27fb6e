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
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fleet import fleet, report_fleet
from rich.table import Table
from sync_support import bench_settings, console, drop_buckets, event_for, out

from edge_sync.fleet import EdgeSpec, LocalSpec
from edge_sync.main import ControllerFleet
from edge_sync.metrics import SyncMetrics
from edge_sync.versions import fetch_verified, newest_gated
from edgecore.layout import MANIFEST, Layout, edge_model_name
from edgecore.manifest import Manifest, entries_for_dir
from edgecore.messaging import EventProducer, ensure_topics
from edgecore.pointer import ModelPointer
from edgecore.storage import ObjectStore


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
        report_fleet(fleet(args.edges, args.processes, args.workers, args.sample, args.ready_delay))


if __name__ == "__main__":
    main()
