"""Edge sync: event-to-answer latency on the real model server, and a 1,000-edge KServe fleet.

Latency: a version is delivered to the edge bucket, then ``model-published`` is sent on
real Kafka; the clock runs from that send until the real edge model server
(``python -m serving.server``, a subprocess) answers a kiosk photo with the new version.
The baseline, measured in the same run, is the download alone: the same version fetched
and verified against its manifest (what the controller must do before anything else).
Goal: end-to-end ≤ 1 s plus download time.

Fleet: ``bench/fleet.py``, run here with the same options: N InferenceServices repointed
by a controller fleet, against one worker extrapolated to N.  Goal: N = 1,000 in ≤ 30 s.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fleet import add_fleet_options, run_fleet
from rich.table import Table
from sync_support import bench_settings, console, drop_buckets, event_for, out

from edge_sync.delivery.edges import EdgeSpec, LocalSpec
from edge_sync.delivery.fleet import ControllerFleet
from edge_sync.delivery.metrics import SyncMetrics
from edge_sync.delivery.service import build_fleet
from foundation.layout import MANIFEST, Layout, edge_model_name
from foundation.manifest import Manifest, entries_for_dir
from foundation.messaging import EventProducer, ensure_topics
from foundation.pointer import ModelPointer
from foundation.registry import fetch_verified, newest_version, write_pointer
from foundation.settings import Settings
from foundation.storage.store import ObjectStore


# -- latency: model-published → the local server answers with the new version ------------
@dataclass(frozen=True)
class LatencyEdge:
    """The one edge of the latency part: its settings and stores, and the versions built for it."""

    settings: Settings
    store: ObjectStore
    layout: Layout
    name: str
    pad_mb: int

    @property
    def model(self) -> str:
        """The edge's model name, as the controller and the server both spell it."""
        return edge_model_name(self.name)

    def version_dir(self, number: int) -> Path:
        """A real trained version, padded so that its download weighs what a real model's does."""
        from testkit.serving import write_version

        version = f"v{number:06d}"
        root = Path(
            write_version(self.settings.state_dir / "versions" / version, self.name, version, seed=number % 2)
        )
        if self.pad_mb:
            (root / "padding.bin").write_bytes(os.urandom(self.pad_mb * 1_048_576))
            old = Manifest.from_bytes((root / MANIFEST).read_bytes(), str(root))
            (root / MANIFEST).write_bytes(old.model_copy(update={"files": entries_for_dir(root)}).to_bytes())
        return root

    def upload(self, number: int) -> str:
        """Build version ``number`` and put it in the edge bucket, as the publish step would."""
        from testkit.serving import upload_version

        version = f"v{number:06d}"
        root = self.version_dir(number)
        return upload_version(self.store, self.layout.edge_model_prefix(self.name, self.model, version), root)


def seed_edge(edge: LatencyEdge) -> Path:
    """The edge as a running store has it: v000001 pointed at, and one probe photo per product.

    The controller checks each new version against the probes before it swaps it in;
    returns their folder.
    """
    from testkit.serving import LABELS, kiosk_jpeg

    uri = edge.upload(1)
    pointer = ModelPointer(model=edge.model, version="v000001", uri=uri, synced_at=datetime.now(UTC))
    write_pointer(edge.store, edge.layout, edge.name, pointer)
    probes = edge.settings.state_dir / "probes"
    for k, label in enumerate(LABELS):
        (probes / label).mkdir(parents=True)
        (probes / label / "probe.jpg").write_bytes(kiosk_jpeg(label, 700_000 + k))
    return probes


def one_round(
    edge: LatencyEdge,
    number: int,
    controllers: ControllerFleet,
    producer: EventProducer,
    http: httpx.Client,
    url: str,
    photo: dict[str, Any],
) -> dict[str, float]:
    """Roll out version ``number``: the download alone first (the baseline), then event → answer.

    The baseline fetches and verifies the version as the controller must before anything
    else, so the end-to-end time minus the baseline is the controller's own overhead.
    """
    version = f"v{number:06d}"
    edge.upload(number)
    candidate = newest_version(edge.store, edge.layout.edge_models_prefix(edge.name, edge.model))
    assert candidate is not None and candidate.version == version
    baseline = fetch_verified(edge.store, candidate, edge.settings.state_dir / "baseline" / version)
    files = {n: e.sha256 for n, e in candidate.manifest.files.items()}
    started = time.perf_counter()
    producer.publish(
        edge.settings.kafka.topic_model_published,
        event_for(edge.settings, edge.layout, edge.name, version, files),
    )
    while True:
        answer = http.post(f"{url}/v1/models/{edge.model}:predict", json=photo).json()
        if answer.get("model_version") == version:
            break
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    outcome = controllers.outcomes[edge.name]
    console.print(f"[cyan]•[/cyan] {version}: answered after {elapsed:.3f} s")
    return {
        "mb": candidate.size / 1_048_576,
        "download_s": baseline.seconds,
        "download_mb_s": baseline.mb_per_s,
        "controller_mb_s": outcome.download_mb_per_s or 0.0,
        "end_to_end_s": elapsed,
        "overhead_s": elapsed - baseline.seconds,
    }


def latency(rounds: int, pad_mb: int) -> list[dict[str, float]]:
    """Event-to-answer seconds for ``rounds`` versions, on the real model server and controller.

    The controller runs in this process, on threads, so its outcomes can be read; the
    server is the real subprocess, so the answer is what a kiosk would get.
    """
    from testkit.serving import b64, kiosk_jpeg, running_server

    tag = uuid.uuid4().hex[:8]
    settings = bench_settings(tag, workers=8)
    store, layout = ObjectStore(settings.s3), Layout(settings.buckets)
    ensure_topics(settings.kafka)
    edge = LatencyEdge(settings, store, layout, "bench-shop", pad_mb)
    console.print("[cyan]•[/cyan] training two tiny real models (setup, not timed)")
    probes = seed_edge(edge)
    photo = {"instances": [{"image_bytes": {"b64": b64(kiosk_jpeg("LIME-GREEN", 1))}}]}
    results: list[dict[str, float]] = []
    console.print("[cyan]•[/cyan] starting the edge model server")
    with running_server(
        settings,
        edge.name,
        settings.state_dir / "server",
        capture=False,
        edge_bucket_prefix=settings.buckets.edge_prefix,
    ) as server:
        spec = EdgeSpec(edge=edge.name, target=LocalSpec(url=server.url, probes=probes))
        controllers = build_fleet(settings, [spec], metrics=SyncMetrics())
        stop = threading.Event()
        runner = threading.Thread(target=controllers.run, args=(stop, tag, 1.0), daemon=True)
        runner.start()
        producer = EventProducer(settings.kafka, "/bench/publish")
        http = httpx.Client(timeout=30)
        try:
            while controllers.outcomes.get(edge.name) is None:  # the start-up poll
                time.sleep(0.05)
            for number in range(2, rounds + 2):
                results.append(one_round(edge, number, controllers, producer, http, server.url, photo))
        finally:
            http.close()
            producer.close()
            stop.set()
            runner.join(30)
    drop_buckets(store, [layout.edge_bucket(edge.name)])
    return results


def report_latency(rows: list[dict[str, float]]) -> None:
    """Each round against its download, and the goal on the worst round's overhead."""
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


def main() -> None:
    """Both parts by default; each can be skipped (the fleet alone needs no TensorFlow)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_fleet_options(parser)
    parser.add_argument("--rounds", type=int, default=3, help="Versions rolled out in the latency part.")
    parser.add_argument(
        "--pad-mb", type=int, default=8, help="Extra bytes per version (a MobileNet-sized download)."
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-fleet", action="store_true")
    args = parser.parse_args()

    if not args.skip_latency:
        report_latency(latency(args.rounds, args.pad_mb))
    if not args.skip_fleet:
        run_fleet(args)


if __name__ == "__main__":
    main()
