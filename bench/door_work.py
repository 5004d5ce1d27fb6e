"""The work the front door must do for every set, each piece timed alone: what bounds the transfer.

``bench/transfer.py`` times the whole edge→core path against boto3's multipart upload; on
a machine with few cores the path's wall time follows its CPU.  This bench takes the
door's share apart, on the same images (546 distinct 1 MB JPEGs, 500 MB): the sha256 and
structure check of every image, TLS 1.3 both ways (in memory, so no socket is counted),
and the door's multipart writer alone against boto3's managed upload of the same bytes
to a TLS MinIO of the bench's own (rounds alternate which goes first).

    .venv/bin/python bench/door_work.py [--rounds 3] [--set-mb 500]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ssl
import statistics
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table
from transfer import CpuMeter, base_jpeg, baseline, settle, variant
from transfer_path import SiteStorage

from edge_sync.uplink.archive import padding, shard_member_header
from foundation.layout import Location
from foundation.preprocessing import check_complete
from foundation.settings import Settings
from foundation.storage.multipart import MultipartWriter
from foundation.storage.store import ObjectStore
from foundation.storage.wire import S3Wire

console = Console()


def cpu_of(work: Callable[[], object]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def tls_pair(settings: Settings) -> tuple[ssl.SSLObject, ssl.SSLObject, list[ssl.MemoryBIO]]:
    """A client and a server TLS session joined by memory buffers, handshake done."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(settings.cert_file, settings.key_file)
    client_ctx = ssl.create_default_context(cafile=str(settings.ca_file))
    client_ctx.check_hostname = False
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    return client, server, [c_in, c_out, s_in, s_out]


def tls_costs(settings: Settings, images: list[bytes]) -> tuple[str, float, float]:
    """(cipher, CPU seconds to encrypt every image, to decrypt them)."""
    client, server, (_, c_out, s_in, _) = tls_pair(settings)
    encrypt = decrypt = 0.0
    for data in images:
        started = time.process_time()
        client.write(data)
        sealed = c_out.read()
        encrypt += time.process_time() - started
        started = time.process_time()
        s_in.write(sealed)
        opened = 0
        while opened < len(data):
            opened += len(server.read(1 << 18))
        decrypt += time.process_time() - started
    return f"{client.version()} {client.cipher()[0]}", encrypt, decrypt


def write_shard(store: ObjectStore, wire: S3Wire, bucket: str, images: list[bytes]) -> None:
    """The images packed into one object exactly as the door packs a set (8 MB parts, 4 in flight)."""
    with ThreadPoolExecutor(4) as pool:
        writer = MultipartWriter(
            store, wire, Location(bucket, f"shard-{uuid.uuid4().hex}.tar"), pool, 8 << 20, 4
        )
        for k, data in enumerate(images):
            writer.write(shard_member_header(f"images/BENCH/{k}.jpg", len(data)))
            writer.write(data)
            writer.write(padding(len(data)))
            while (busy := writer.backlog()) is not None:
                busy.result()
        writer.complete()


def upload_rounds(
    settings: Settings, images: list[bytes], rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """(seconds, client CPU seconds) of each upload, per path, rounds alternating the order."""
    store, wire = ObjectStore(settings.s3), S3Wire(settings.s3)
    store.ensure_bucket(settings.buckets.training)
    paths: dict[str, Callable[[], object]] = {
        "the door's writer": lambda: write_shard(store, wire, settings.buckets.training, images),
        "boto3 managed upload": lambda: baseline(settings, images),
    }
    seen: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    for k in range(rounds):
        for name in sorted(paths, reverse=k % 2 == 1):
            settle()
            with CpuMeter() as used:
                started = time.perf_counter()
                paths[name]()
                seconds = time.perf_counter() - started
            seen[name].append((seconds, used.client))
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="Upload rounds (the order alternates).")
    parser.add_argument("--set-mb", type=int, default=500, help="Size of the set, in MB.")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/edgecore-bench-door-work"))
    args = parser.parse_args()
    base = base_jpeg()
    images = [variant(base, i) for i in range(max(1, args.set_mb * (1 << 20) // len(base)))]
    stack = Settings()
    cipher, encrypt, decrypt = tls_costs(stack, images)
    table = Table(title=f"the door's work on {len(images)} images ({sum(map(len, images)) / 1e6:.0f} MB)")
    table.add_column("work")
    table.add_column("CPU s", justify="right")
    table.add_row(
        "sha256 of every image", f"{cpu_of(lambda: [hashlib.sha256(d).digest() for d in images]):.2f}"
    )
    table.add_row(
        "structure check of every image", f"{cpu_of(lambda: [check_complete(d) for d in images]):.2f}"
    )
    table.add_row(f"{cipher}, encrypt", f"{encrypt:.2f}")
    table.add_row(f"{cipher}, decrypt", f"{decrypt:.2f}")
    console.print(table)

    args.workdir.mkdir(parents=True, exist_ok=True)
    with SiteStorage.running(args.workdir, "core", tls=True) as core:
        CpuMeter.minio_pids = tuple(pid for pid in [core.service.process.pid()] if pid is not None)
        settings = stack.updated(buckets={"training": f"bench-door-{uuid.uuid4().hex[:8]}"})
        seen = upload_rounds(settings.model_copy(update={"s3": core.s3}), images, args.rounds)
    for name, runs in seen.items():
        print(
            f"{name}: seconds {', '.join(f'{s:.2f}' for s, _ in runs)}; "
            f"client CPU {', '.join(f'{c:.2f}' for _, c in runs)}"
        )
    writer, boto = (statistics.median(s for s, _ in runs) for runs in seen.values())
    print(f"the door's writer / boto3 managed upload, median seconds = {writer / boto:.2f} (below 1: faster)")


if __name__ == "__main__":
    main()
