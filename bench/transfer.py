"""Edge→core transfer: throughput against raw boto3 multipart, and peak RSS against set size.

For each set size, the images (1 MB JPEGs, distinct bytes) are put in an edge bucket
and recorded as one outbox set; then the real receiver (``edgecore edge receiver``, a
subprocess) and the real shipper (a subprocess of this script) move the set into a
dataset version on the same MinIO.  The baseline uploads the same bytes, as one object,
with boto3's managed multipart upload (8 MB parts, 10 threads).  A second reference,
printed beside it, is that same upload while the images are read back from the edge
bucket at the same time (boto3 GETs, 8 threads, sha256 checked as the shipper does): on
one machine the edge's reads and the core's writes share one MinIO and its cores, so
this is the ceiling of any edge→core path that starts from the edge bucket.  Peak RSS is each
process's ``VmHWM`` (the kernel's high-water mark), so nothing is sampled or missed.

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
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
from boto3.s3.transfer import TransferConfig
from PIL import Image
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from edge_sync.outbox import INCOMING, Item, Outbox, outbox_path
from edgecore.layout import Layout, Location
from edgecore.messaging import ensure_topics
from edgecore.settings import Settings
from edgecore.storage import ObjectStore

console = Console(stderr=True)
EDGE = "bench-edge"
SKU = "BENCH-ITEM"
TOKEN = "bench-token-0123456789abcdef"
IMAGE_BYTES = 1 << 20


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


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def bench_settings(run: str, state_dir: Path, port: int) -> Settings:
    return Settings(
        training_bucket=f"bench-train-{run}",
        edge_bucket_prefix=f"bench-{run}-",
        topic_training_data_ready=f"bench-tdr-{run}",
        state_dir=state_dir,
        receiver_port=port,
        receiver_url=f"http://127.0.0.1:{port}",
        edge_token=SecretStr(TOKEN),
    )


def env_of(cfg: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "EDGECORE_TRAINING_BUCKET": cfg.training_bucket,
        "EDGECORE_EDGE_BUCKET_PREFIX": cfg.edge_bucket_prefix,
        "EDGECORE_TOPIC_TRAINING_DATA_READY": cfg.topic_training_data_ready,
        "EDGECORE_STATE_DIR": str(cfg.state_dir),
        "EDGECORE_RECEIVER_PORT": str(cfg.receiver_port),
        "EDGECORE_RECEIVER_URL": cfg.receiver_url,
        "EDGECORE_EDGE_TOKEN": TOKEN,
        "EDGECORE_EDGE_TOKENS": json.dumps({EDGE: TOKEN}),
    }


def prepare_set(cfg: Settings, store: ObjectStore, images: list[bytes]) -> None:
    """Put the images in the edge bucket and record them as one outbox set (not timed)."""
    layout = Layout(cfg)
    store.ensure_bucket(layout.edge_bucket(EDGE))
    items = []
    for data in images:
        sha = hashlib.sha256(data).hexdigest()
        loc = layout.incoming_image(EDGE, SKU, sha, "jpg")
        store.put_bytes(loc, data, "image/jpeg")
        items.append(Item(loc.bucket, loc.key, INCOMING, SKU, sha, "jpg", sha, len(data)))
    outbox = Outbox(outbox_path(cfg.outbox_dir, EDGE))
    outbox.complete(EDGE, items)
    outbox.close()


def ship_worker(state_dir: Path, run: str, port: int) -> None:
    """Runs in its own process: ship the outbox once, print seconds and peak RSS as JSON."""
    from edge_sync.shipper import Shipper

    cfg = bench_settings(run, state_dir, port)
    store = ObjectStore(cfg)
    outbox = Outbox(outbox_path(cfg.outbox_dir, EDGE))
    shipper = Shipper(cfg, EDGE, store, outbox, list)
    started = time.perf_counter()
    results = shipper.ship_due()
    seconds = time.perf_counter() - started
    outcomes = [r.outcome for r in results]
    print(json.dumps({"seconds": seconds, "outcomes": outcomes, "peak_rss_mb": peak_rss_mb(os.getpid())}))


def start_receiver(cfg: Settings, log: Path) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "edgecore"), "edge", "receiver"]
    proc = subprocess.Popen(command, env=env_of(cfg), stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{cfg.receiver_url}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"receiver did not start; see {log}")


def edge_to_core(size_mb: int, base: bytes, workdir: Path, with_baseline: bool) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    port = _free_port()
    cfg = bench_settings(run, workdir / run, port)
    ensure_topics(cfg)
    store = ObjectStore(cfg)
    count = max(1, size_mb * (1 << 20) // len(base))
    images = [variant(base, i) for i in range(count)]
    total = sum(len(i) for i in images)
    with console.status(f"[{size_mb} MB] putting {count} images in the edge bucket"):
        prepare_set(cfg, store, images)
    receiver = start_receiver(cfg, workdir / f"receiver-{run}.log")
    try:
        receiver_idle = peak_rss_mb(receiver.pid)
        with console.status(f"[{size_mb} MB] shipping edge → core"):
            worker = subprocess.run(
                [sys.executable, __file__, "--ship-worker", str(cfg.state_dir), run, str(port)],
                env=env_of(cfg),
                capture_output=True,
                text=True,
                check=True,
            )
        shipped = json.loads(worker.stdout.strip().splitlines()[-1])
        receiver_peak = peak_rss_mb(receiver.pid)
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=60)
    if shipped["outcomes"] != ["shipped"]:
        raise RuntimeError(f"the set did not ship: {shipped}")
    baseline_s = baseline(cfg, store, images) if with_baseline else 0.0
    read_write_s = baseline_while_reading(cfg, store, images) if with_baseline else 0.0
    per_image_s = baseline_per_image(cfg, images) if with_baseline else 0.0
    cleanup(store, [cfg.training_bucket, Layout(cfg).edge_bucket(EDGE)])
    return {
        "size_mb": total / (1 << 20),
        "images": count,
        "edge_to_core_s": shipped["seconds"],
        "baseline_s": baseline_s,
        "read_write_s": read_write_s,
        "per_image_s": per_image_s,
        "shipper_peak_mb": shipped["peak_rss_mb"],
        "receiver_idle_mb": receiver_idle,
        "receiver_peak_mb": receiver_peak,
    }


def baseline(cfg: Settings, store: ObjectStore, images: list[bytes]) -> float:
    """Raw boto3 managed multipart upload of the same bytes to the same MinIO."""
    client = _client(cfg)
    store.ensure_bucket(cfg.training_bucket)
    config = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=10)
    started = time.perf_counter()
    client.upload_fileobj(Chain(images), cfg.training_bucket, "baseline/all-images.bin", Config=config)
    return time.perf_counter() - started


def baseline_while_reading(cfg: Settings, store: ObjectStore, images: list[bytes]) -> float:
    """The baseline upload while the same images are read from the edge bucket: wall seconds."""
    layout = Layout(cfg)
    keys = [layout.incoming_image(EDGE, SKU, hashlib.sha256(d).hexdigest(), "jpg") for d in images]
    with ThreadPoolExecutor(8) as pool:
        started = time.perf_counter()
        reads = [
            pool.submit(store.get_bytes, loc, hashlib.sha256(d).hexdigest())
            for loc, d in zip(keys, images, strict=True)
        ]
        baseline(cfg, store, images)
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
                lambda kv: client.put_object(Bucket=cfg.training_bucket, Key=kv[0], Body=kv[1]),
                zip(keys, images, strict=True),
            )
        )
    return time.perf_counter() - started


def _client(cfg: Settings) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=cfg.s3_endpoint_url,
        aws_access_key_id=cfg.s3_access_key,
        aws_secret_access_key=cfg.s3_secret_key.get_secret_value(),
        region_name=cfg.s3_region,
    )


def cleanup(store: ObjectStore, buckets: list[str]) -> None:
    for bucket in buckets:
        for obj in store.list(Location(bucket, "")):
            store.delete(obj.location)
        store.client.delete_bucket(Bucket=bucket)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--throughput-mb", type=int, default=500, help="Set size for the throughput ratio.")
    parser.add_argument("--memory-mb", type=int, action="append", help="Set sizes for peak RSS (repeatable).")
    parser.add_argument("--quick", action="store_true", help="20 MB throughput, 20 MB and 60 MB memory.")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/edgecore-bench-transfer"))
    parser.add_argument("--ship-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ship_worker:
        ship_worker(Path(args.ship_worker[0]), args.ship_worker[1], int(args.ship_worker[2]))
        return
    memory = args.memory_mb or ([20, 60] if args.quick else [100, 1024])
    throughput = 20 if args.quick else args.throughput_mb
    args.workdir.mkdir(parents=True, exist_ok=True)
    base = base_jpeg()
    console.print(
        f"image size {len(base) / 1e6:.2f} MB; throughput set {throughput} MB; memory sets {memory} MB"
    )

    t = edge_to_core(throughput, base, args.workdir, with_baseline=True)
    table = Table(title=f"edge → core throughput, {t['size_mb']:.0f} MB in {t['images']} images")
    for col in ("path", "seconds", "MB/s"):
        table.add_column(col, justify="right")
    table.add_row(
        "boto3 multipart (baseline)", f"{t['baseline_s']:.2f}", f"{t['size_mb'] / t['baseline_s']:.1f}"
    )
    table.add_row(
        "boto3 multipart while reading the images from the edge bucket",
        f"{t['read_write_s']:.2f}",
        f"{t['size_mb'] / t['read_write_s']:.1f}",
    )
    table.add_row(
        "boto3 put_object per image, 16 threads",
        f"{t['per_image_s']:.2f}",
        f"{t['size_mb'] / t['per_image_s']:.1f}",
    )
    table.add_row(
        "shipper → receiver → MinIO",
        f"{t['edge_to_core_s']:.2f}",
        f"{t['size_mb'] / t['edge_to_core_s']:.1f}",
    )
    Console().print(table)
    ratio = t["baseline_s"] / t["edge_to_core_s"]
    print(f"throughput ratio edge→core / boto3 multipart = {ratio:.2f} (goal ≥ 0.9)")
    shared = t["read_write_s"] / t["edge_to_core_s"]
    print(f"throughput ratio edge→core / boto3 multipart while reading the edge bucket = {shared:.2f}")
    ceiling = t["per_image_s"] / t["edge_to_core_s"]
    print(f"throughput ratio edge→core / boto3 put_object per image (16 threads) = {ceiling:.2f}")

    runs = [edge_to_core(size, base, args.workdir, with_baseline=False) for size in memory]
    table = Table(title="peak RSS (VmHWM) by set size")
    for col in ("set MB", "shipper MB", "receiver idle MB", "receiver peak MB", "edge→core MB/s"):
        table.add_column(col, justify="right")
    for r in runs:
        table.add_row(
            f"{r['size_mb']:.0f}",
            f"{r['shipper_peak_mb']:.0f}",
            f"{r['receiver_idle_mb']:.0f}",
            f"{r['receiver_peak_mb']:.0f}",
            f"{r['size_mb'] / r['edge_to_core_s']:.1f}",
        )
    Console().print(table)
    small, large = runs[0], runs[-1]
    for who in ("shipper_peak_mb", "receiver_peak_mb"):
        growth = large[who] / small[who]
        print(
            f"{who.split('_')[0]} peak RSS {large['size_mb']:.0f} MB set / {small['size_mb']:.0f} MB set = "
            f"{growth:.3f} (goal ≤ 1.10)"
        )


if __name__ == "__main__":
    main()
