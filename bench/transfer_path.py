"""The edge→core path that ``bench/transfer.py`` measures, each part as it runs for real.

Two sites, each with a MinIO of its own started for the bench: the edge (its bucket, its
gateway and shipper) and the core (its MinIO serving TLS, and its front door over TLS,
``edgecore core door``).  The gateway runs in the bench's own process (accepting the set
is setup, not timed); the shipper runs in a worker process and the front door is its
own process, so each one's peak RSS and CPU are its own.  Each run has fresh buckets and
topic, and a port and token of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from measure import peak_rss_mb
from pydantic import SecretStr

from edge_sync.uplink.service import build_gateway, build_shipper
from edgecore.stack.minio import MinioService
from edgecore.stack.settings import StackSettings
from edgecore.stack.tools import free_port
from foundation.credentials import new_token, write_tokens_file
from foundation.settings import S3Settings, Settings

EDGE = "bench-edge"
SKU = "BENCH-ITEM"


@dataclass(frozen=True)
class SiteStorage:
    """A site's own MinIO for the bench, with credentials of its own.

    Each site stores in a process of its own, as the stores and the core do.  The bench's CPU
    meter and its wait for quiet (``transfer.settle``) watch these two processes only; the
    stack's MinIO still runs (the bench needs its Kafka and certificates), and whatever earlier
    runs left in it is scanned in the background on the same cores.  The core's serves TLS
    with the stack's certificate; the edge's, local to its site, plain HTTP.
    """

    s3: S3Settings
    service: MinioService

    @classmethod
    @contextlib.contextmanager
    def running(cls, workdir: Path, site: Literal["edge", "core"], tls: bool) -> Iterator[SiteStorage]:
        """Started in a folder made for this run (a MinIO of an earlier run, in a folder of its
        own, is never adopted), stopped and its folder removed at the end."""
        stack = Settings()
        folder = Path(tempfile.mkdtemp(prefix=f"{site}-minio-", dir=workdir))
        port = free_port()
        s3 = stack.s3.model_copy(
            update={
                "port": port,
                "endpoint": f"{'https' if tls else 'http'}://127.0.0.1:{port}",
                "access_key": f"bench-{site}",
                "secret_key": SecretStr(secrets.token_urlsafe(24)),
                "ca_file": stack.ca_file if tls else None,
            }
        )
        settings = stack.updated(state_dir=folder).model_copy(update={"s3": s3})
        service = MinioService(
            settings,
            StackSettings(),
            console_port=free_port(),
            notify=False,
            tls=(stack.cert_file, stack.key_file) if tls else None,
        )
        try:
            service.start()
            yield cls(s3, service)
        finally:
            service.process.stop()
            shutil.rmtree(folder, ignore_errors=True)


def bench_settings(
    run: str, state_dir: Path, port: int, edge_s3: S3Settings, core_s3: S3Settings
) -> tuple[Settings, Settings]:
    """(the edge's, the core's) settings of one run: buckets, topic, front door and token its own."""
    stack = Settings()
    token = new_token()
    tls = {"ca_file": stack.ca_file, "cert_file": stack.cert_file, "key_file": stack.key_file}
    edge = stack.updated(
        state_dir=state_dir / "edge",
        buckets={"edge_prefix": f"bench-{run}-"},
        door={"url": f"https://127.0.0.1:{port}", "token": SecretStr(token)},
        tls={"ca_file": stack.ca_file},
    ).model_copy(update={"s3": edge_s3})
    core_cfg = stack.updated(
        state_dir=state_dir / "core",
        buckets={"training": f"bench-train-{run}"},
        kafka={"topic_training_data_ready": f"bench-tdr-{run}"},
        door={"port": port, "url": f"https://127.0.0.1:{port}"},
        tls=tls,
    ).model_copy(update={"s3": core_s3})
    write_tokens_file(core_cfg.door_tokens_file, {EDGE: [token]})
    return edge, core_cfg


def env_of(cfg: Settings) -> dict[str, str]:
    """A site's settings for the processes it starts (the front door, the shipper worker)."""
    return {**os.environ, **cfg.environment()}


def prepare_set(cfg: Settings, images: list[bytes]) -> float:
    """Accept the images through the real gateway and complete one set (not timed).

    The gateway stores each image in the edge bucket and keeps its spool copy, as it does
    for a device; returns the CPU seconds those spool copies took, the part of the
    acceptance the transfer relies on.
    """
    gateway = build_gateway(cfg, EDGE)
    outbox = gateway.outbox
    spool_put = outbox.spool.put
    spool_cpu = 0.0

    def timed_put(key: str, data: bytes) -> None:
        nonlocal spool_cpu
        started = time.process_time()
        spool_put(key, data)
        spool_cpu += time.process_time() - started

    outbox.spool.put = timed_put  # type: ignore[method-assign]
    for data in images:
        gateway.accept_image(SKU, "image/jpeg", data)
    gateway.complete(SKU)
    outbox.close()
    return spool_cpu


def ship_worker() -> None:
    """Runs in its own process, with the edge's settings in its environment: ship the outbox once,
    print seconds and peak RSS as JSON."""
    shipper = build_shipper(Settings(), EDGE)
    started, cpu = time.perf_counter(), time.process_time()
    results = shipper.ship_due()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    outcomes = [r.outcome for r in results]
    print(
        json.dumps(
            {"seconds": seconds, "cpu_s": cpu, "outcomes": outcomes, "peak_rss_mb": peak_rss_mb(os.getpid())}
        )
    )


def start_front_door(core: Settings, log: Path) -> subprocess.Popen[bytes]:
    """The real front door, ready: shipping starts only once it answers, so start-up is never timed."""
    command = [str(Path(sys.executable).parent / "edgecore"), "core", "door"]
    proc = subprocess.Popen(command, env=env_of(core), stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{core.door.url}/healthz", timeout=1, verify=str(core.ca_file)).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the front door did not start; see {log}")
