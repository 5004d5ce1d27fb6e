"""Edge→core transfer: throughput against raw boto3 multipart, and peak RSS against set size.

Each site stores in a MinIO of its own, started by the bench in a folder made for the
run: the edge's (plain HTTP, local to the store) and the core's (TLS, with the stack's
certificate).  For each set size, the images (1 MB JPEGs, distinct bytes) are accepted
through the real gateway (each stored in the edge bucket, with its copy in the outbox's
spool) and completed as one set; then the real front door (``edgecore core door``, a
subprocess, TLS) and the real shipper (a subprocess of this script) move the set into a
dataset version in the core's MinIO.  The baseline uploads the same bytes, as one object, to that same TLS
endpoint with boto3's managed multipart upload (8 MB parts, 10 threads).  Two more references are printed
beside it: that same upload while the images are read back from the edge bucket at the
same time (boto3 GETs, 8 threads, sha256 checked: what a shipper reading the bucket
would compete with, edge and core sharing two cores here), and one
``put_object`` per image.  Peak RSS is each process's ``VmHWM`` (the kernel's high-water
mark), so nothing is sampled or missed.  Every path also reports the CPU seconds each
process spent on it (MinIO, the receiver, the shipper, the baseline's client): on a
shared 2-core machine CPU is what the paths compete for, and it shows where the time of
each goes.  The CPU the gateway spent on the spool copies, when it accepted the images,
is printed too.

    .venv/bin/python bench/transfer.py                     # 500 MB throughput, 100 MB and 1 GB memory
    .venv/bin/python bench/transfer.py --quick             # 20 MB and 60 MB: a smoke run
    .venv/bin/python bench/transfer.py --throughput-mb 200 --memory-mb 50 --memory-mb 400
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from boto3.s3.transfer import TransferConfig
from measure import cpu_seconds, peak_rss_mb
from PIL import Image
from rich.console import Console
from transfer_path import (
    EDGE,
    SKU,
    SiteStorage,
    bench_settings,
    env_of,
    prepare_set,
    ship_worker,
    start_front_door,
)
from transfer_report import report_memory, report_throughput

from edgecore.stack.tools import free_port
from foundation.layout import Layout, Location
from foundation.messaging import ensure_topics
from foundation.settings import S3Settings, Settings
from foundation.storage.store import ObjectStore

console = Console(stderr=True)


def base_jpeg() -> bytes:
    """A noisy JPEG of about 1 MB (the size of a phone photo of a shelf)."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, size=(900, 900, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def variant(base: bytes, index: int) -> bytes:
    """The same picture with a distinct JPEG comment segment: distinct bytes, still a JPEG."""
    comment = f"edgecore bench image {index}".encode()
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return base[:2] + segment + base[2:]


class Chain(io.RawIOBase):
    """A read-only stream over a list of byte strings (the baseline's source)."""

    def __init__(self, parts: list[bytes]) -> None:
        self._parts = parts
        self._index = 0
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        written = 0
        while written < len(view) and self._index < len(self._parts):
            part = self._parts[self._index]
            n = min(len(view) - written, len(part) - self._offset)
            view[written : written + n] = part[self._offset : self._offset + n]
            written += n
            self._offset += n
            if self._offset == len(part):
                self._index += 1
                self._offset = 0
        return written


class CpuMeter:
    """CPU seconds both MinIOs (the edge's and the core's) and this process spend inside the ``with``
    block: where a path's time goes."""

    minio_pids: tuple[int, ...] = ()

    def __enter__(self) -> CpuMeter:
        self._minio, self._self = self._minio_cpu(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.minio = self._minio_cpu() - self._minio
        self.client = time.process_time() - self._self

    def _minio_cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.minio_pids)


def settle(quiet_cpu_s: float = 0.05, window_s: float = 0.5, limit_s: float = 20.0) -> None:
    """Start a timed path on a quiet machine: dirty pages written out, the MinIOs idle.

    The set's preparation and the previous path leave hundreds of MB to write back and
    MinIO's own clean-up running; whichever path ran next would pay for them.
    """
    os.sync()
    meter, deadline = CpuMeter(), time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with meter:
            time.sleep(window_s)
        if meter.minio < quiet_cpu_s:
            return


def ship(edge: Settings, core: Settings, run: str, workdir: Path, size_mb: int) -> dict[str, Any]:
    """Ship the set through a real front door: the timed edge→core path, and what it cost.

    The shipper is a worker process of its own, so that its peak RSS is the shipper's;
    the front door's RSS is read before and after, its CPU across the shipping.
    """
    receiver = start_front_door(core, workdir / f"door-{run}.log")
    meter = CpuMeter()
    try:
        receiver_idle = peak_rss_mb(receiver.pid)
        receiver_cpu = cpu_seconds(receiver.pid)
        with console.status(f"[{size_mb} MB] shipping edge → core"), meter:
            worker = subprocess.run(
                [sys.executable, __file__, "--ship-worker"],
                env=env_of(edge),
                capture_output=True,
                text=True,
                check=True,
            )
        shipped = json.loads(worker.stdout.strip().splitlines()[-1])
        receiver_peak = peak_rss_mb(receiver.pid)
        receiver_cpu = cpu_seconds(receiver.pid) - receiver_cpu
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=60)
    if shipped["outcomes"] != ["shipped"]:
        raise RuntimeError(f"the set did not ship: {shipped}")
    return {
        "seconds": shipped["seconds"],
        "cpu": {"MinIO": meter.minio, "receiver": receiver_cpu, "shipper": shipped["cpu_s"]},
        "shipper_peak_mb": shipped["peak_rss_mb"],
        "receiver_idle_mb": receiver_idle,
        "receiver_peak_mb": receiver_peak,
    }


def edge_to_core(
    size_mb: int,
    base: bytes,
    workdir: Path,
    sites: tuple[S3Settings, S3Settings],
    with_baseline: bool,
    baseline_first: bool,
) -> dict[str, Any]:
    """One set of ``size_mb`` through the real path, and (``with_baseline``) the references.

    Each call has buckets of its own and drops them at the end, so rounds are independent;
    which goes first alternates between rounds, so neither always meets a busier machine.
    """
    run = uuid.uuid4().hex[:8]
    edge, core = bench_settings(run, workdir / run, free_port(), *sites)
    ensure_topics(core.kafka)
    count = max(1, size_mb * (1 << 20) // len(base))
    images = [variant(base, i) for i in range(count)]
    total = sum(len(i) for i in images)
    with console.status(f"[{size_mb} MB] putting {count} images in the edge bucket"):
        spool_cpu = prepare_set(edge, images)
    paths = time_baselines(edge, core, images) if with_baseline and baseline_first else {}
    settle()
    shipped = ship(edge, core, run, workdir, size_mb)
    if with_baseline and not baseline_first:
        paths = time_baselines(edge, core, images)
    cleanup(ObjectStore(core.s3), [core.buckets.training])
    cleanup(ObjectStore(edge.s3), [Layout(edge.buckets).edge_bucket(EDGE)])
    return {
        "size_mb": total / (1 << 20),
        "images": count,
        "edge_to_core_s": shipped["seconds"],
        "edge_to_core_cpu": shipped["cpu"],
        "spool_cpu": spool_cpu,
        "paths": paths,
        "shipper_peak_mb": shipped["shipper_peak_mb"],
        "receiver_idle_mb": shipped["receiver_idle_mb"],
        "receiver_peak_mb": shipped["receiver_peak_mb"],
    }


def time_baselines(
    edge: Settings, core: Settings, images: list[bytes]
) -> dict[str, tuple[float, dict[str, float]]]:
    """Each reference path's seconds, with the CPU the MinIOs and this process spent on it."""
    references: dict[str, Callable[[], float]] = {
        "baseline": lambda: baseline(core, images),
        "read_write": lambda: baseline_while_reading(edge, core, images),
        "per_image": lambda: baseline_per_image(core, images),
    }
    paths: dict[str, tuple[float, dict[str, float]]] = {}
    for name, path in references.items():
        settle()
        with CpuMeter() as used:
            seconds = path()
        paths[name] = (seconds, {"MinIO": used.minio, "client": used.client})
    return paths


def baseline(cfg: Settings, images: list[bytes]) -> float:
    """Raw boto3 managed multipart upload of the same bytes to the core's MinIO, over TLS too."""
    client = _client(cfg)
    ObjectStore(cfg.s3).ensure_bucket(cfg.buckets.training)
    config = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=10)
    started = time.perf_counter()
    client.upload_fileobj(Chain(images), cfg.buckets.training, "baseline/all-images.bin", Config=config)
    return time.perf_counter() - started


def baseline_while_reading(edge: Settings, core: Settings, images: list[bytes]) -> float:
    """The baseline upload while the same images are read from the edge bucket: wall seconds."""
    store, layout = ObjectStore(edge.s3), Layout(edge.buckets)
    keys = [layout.incoming_image(EDGE, SKU, hashlib.sha256(d).hexdigest(), "jpg") for d in images]
    with ThreadPoolExecutor(8) as pool:
        started = time.perf_counter()
        reads = [
            pool.submit(store.get_bytes, loc, hashlib.sha256(d).hexdigest())
            for loc, d in zip(keys, images, strict=True)
        ]
        baseline(core, images)
        for read in reads:
            read.result()
        return time.perf_counter() - started


def baseline_per_image(cfg: Settings, images: list[bytes], threads: int = 16) -> float:
    """The ceiling for any path that stores one object per image: boto3 put_object, in parallel."""
    client = _client(cfg)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        keys = (f"baseline/objects/{i}.jpg" for i in range(len(images)))
        list(
            pool.map(
                lambda kv: client.put_object(Bucket=cfg.buckets.training, Key=kv[0], Body=kv[1]),
                zip(keys, images, strict=True),
            )
        )
    return time.perf_counter() - started


def _client(cfg: Settings) -> Any:
    """A plain boto3 client on the same endpoint: the baselines must not go through edgecore's code."""
    return boto3.client(
        "s3",
        endpoint_url=cfg.s3.endpoint_url,
        aws_access_key_id=cfg.s3.access_key,
        aws_secret_access_key=cfg.s3.secret_key.get_secret_value(),
        region_name=cfg.s3.region,
        verify=str(cfg.s3.ca_file) if cfg.s3.ca_file else None,
    )


def cleanup(store: ObjectStore, buckets: list[str]) -> None:
    """Empty and delete the run's buckets, so that each round starts from nothing."""
    for bucket in buckets:
        for obj in store.list(Location(bucket, "")):
            store.delete(obj.location)
        store.client.delete_bucket(Bucket=bucket)


def main() -> None:
    """Throughput rounds first, then one run per memory set size; ``--ship-worker`` is the worker."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--throughput-mb", type=int, default=500, help="Set size for the throughput ratio.")
    parser.add_argument("--memory-mb", type=int, action="append", help="Set sizes for peak RSS (repeatable).")
    parser.add_argument("--quick", action="store_true", help="20 MB throughput, 20 MB and 60 MB memory.")
    parser.add_argument(
        "--rounds", type=int, default=3, help="Throughput rounds (which path goes first alternates)."
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/edgecore-bench-transfer"))
    parser.add_argument("--ship-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ship_worker:
        ship_worker()
        return
    memory = args.memory_mb or ([20, 60] if args.quick else [100, 1024])
    throughput = 20 if args.quick else args.throughput_mb
    args.workdir.mkdir(parents=True, exist_ok=True)
    base = base_jpeg()
    console.print(
        f"image size {len(base) / 1e6:.2f} MB; throughput set {throughput} MB; memory sets {memory} MB"
    )

    with (
        SiteStorage.running(args.workdir, "edge", tls=False) as edge,
        SiteStorage.running(args.workdir, "core", tls=True) as core,
    ):
        sites = (edge.s3, core.s3)
        minios = (edge.service.process.pid(), core.service.process.pid())
        CpuMeter.minio_pids = tuple(pid for pid in minios if pid is not None)
        # The machine is shared: rounds alternate the paths, and the medians are compared.
        rounds = [
            edge_to_core(throughput, base, args.workdir, sites, True, baseline_first=i % 2 == 1)
            for i in range(args.rounds)
        ]
        report_throughput(rounds)
        runs = [
            edge_to_core(size, base, args.workdir, sites, with_baseline=False, baseline_first=False)
            for size in memory
        ]
        report_memory(runs)


if __name__ == "__main__":
    main()
