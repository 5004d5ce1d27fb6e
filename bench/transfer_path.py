"""The edge→core path that ``bench/transfer.py`` measures, each part as it runs for real.

The gateway runs in the bench's own process (accepting the set is setup, not timed);
the shipper runs in a worker process and the receiver is ``edgecore edge receiver``, so
each one's peak RSS and CPU are its own.  They share the run's settings: fresh buckets
and topic, and a receiver port of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from measure import peak_rss_mb
from pydantic import SecretStr

from edge_sync.uplink.service import build_gateway, build_shipper
from foundation.settings import Settings

EDGE = "bench-edge"
SKU = "BENCH-ITEM"
TOKEN = "bench-token-0123456789abcdef"


def bench_settings(run: str, state_dir: Path, port: int) -> Settings:
    """Buckets, topic and receiver of this run only, so runs never see each other's sets."""
    return Settings().updated(
        state_dir=state_dir,
        buckets={"training": f"bench-train-{run}", "edge_prefix": f"bench-{run}-"},
        kafka={"topic_training_data_ready": f"bench-tdr-{run}"},
        uplink={
            "receiver_port": port,
            "receiver_url": f"http://127.0.0.1:{port}",
            "edge_token": SecretStr(TOKEN),
        },
    )


def env_of(cfg: Settings) -> dict[str, str]:
    """The run's settings for the processes it starts (the receiver and the shipper worker)."""
    return {
        **os.environ,
        "EDGECORE_TRAINING_BUCKET": cfg.buckets.training,
        "EDGECORE_EDGE_BUCKET_PREFIX": cfg.buckets.edge_prefix,
        "EDGECORE_TOPIC_TRAINING_DATA_READY": cfg.kafka.topic_training_data_ready,
        "EDGECORE_STATE_DIR": str(cfg.state_dir),
        "EDGECORE_RECEIVER_PORT": str(cfg.uplink.receiver_port),
        "EDGECORE_RECEIVER_URL": cfg.uplink.receiver_url,
        "EDGECORE_EDGE_TOKEN": TOKEN,
        "EDGECORE_EDGE_TOKENS": json.dumps({EDGE: TOKEN}),
    }


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


def ship_worker(state_dir: Path, run: str, port: int) -> None:
    """Runs in its own process: ship the outbox once, print seconds and peak RSS as JSON."""
    cfg = bench_settings(run, state_dir, port)
    shipper = build_shipper(cfg, EDGE)
    started, cpu = time.perf_counter(), time.process_time()
    results = shipper.ship_due()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    outcomes = [r.outcome for r in results]
    print(
        json.dumps(
            {"seconds": seconds, "cpu_s": cpu, "outcomes": outcomes, "peak_rss_mb": peak_rss_mb(os.getpid())}
        )
    )


def start_receiver(cfg: Settings, log: Path) -> subprocess.Popen[bytes]:
    """The real receiver, ready: shipping starts only once it answers, so start-up is never timed."""
    command = [str(Path(sys.executable).parent / "edgecore"), "edge", "receiver"]
    proc = subprocess.Popen(command, env=env_of(cfg), stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{cfg.uplink.receiver_url}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"receiver did not start; see {log}")
