"""A flood of large images at a real gateway process: its peak memory, latencies and statuses.

The gateway runs as ``edgecore edge gateway`` (its own process, so its memory is its
own); many devices post at once the largest image a device may post: a 6000×6000 PNG
that compresses to about 100 KB but decodes to about 100 MB.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image, ImageDraw

from edgecore.stack.tools import free_port
from foundation.settings import Settings
from testkit.conditions import wait_for


def big_png(side: int = 6000) -> bytes:
    """A photo-sized PNG of mostly flat colour: small on the wire, ``side``² pixels decoded."""
    image = Image.new("RGB", (side, side), (200, 40, 40))
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(6000)
    for _ in range(60):
        x0, y0 = (int(v) for v in rng.integers(0, side, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.rectangle((x0, y0, x0 + 400, y0 + 300), fill=colour)
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)
    return buf.getvalue()


@dataclass(frozen=True)
class Flood:
    peak_rss_mb: float
    after_rss_mb: float
    idle_rss_mb: float
    statuses: dict[int, int]
    latencies_s: list[float]

    @property
    def p99_s(self) -> float:
        return float(np.percentile(self.latencies_s, 99)) if self.latencies_s else float("nan")


@contextmanager
def gateway_process(settings: Settings, edge: str, log: Path) -> Iterator[tuple[str, psutil.Process]]:
    """``edgecore edge gateway`` for ``edge`` (no shipper), its URL and its process."""
    port = free_port()
    env = {**os.environ, **settings.updated(uplink={"gateway_port": port}).environment()}
    command = [str(Path(sys.executable).parent / "edgecore"), "edge", "gateway", "--edge", edge, "--no-ship"]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url), 120, what="the gateway up")
        yield url, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def flood(url: str, process: psutil.Process, token: str, image: bytes, clients: int) -> Flood:
    """``clients`` posts of ``image`` at once; the process's RSS sampled all along."""
    idle = process.memory_info().rss
    peak = [idle]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    headers = {"content-type": "image/png", "authorization": f"Bearer {token}"}
    with httpx.Client(timeout=600.0, limits=httpx.Limits(max_connections=clients)) as http:

        def post(_: int) -> tuple[int, float]:
            started = time.perf_counter()
            status = http.post(f"{url}/v1/images/FLOOD-TEST", content=image, headers=headers).status_code
            return status, time.perf_counter() - started

        with ThreadPoolExecutor(clients) as pool:
            for status, latency in pool.map(post, range(clients)):
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(latency)
    done.set()
    sampler.join()
    after = process.memory_info().rss
    mb = 1 / 1_048_576
    return Flood(peak[0] * mb, after * mb, idle * mb, statuses, latencies)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
