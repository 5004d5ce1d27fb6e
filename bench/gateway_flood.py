"""The store's gateway under a flood of the largest images a device may post.

``--clients`` devices post at once a 6000×6000 PNG (about 100 KB on the wire, about
100 MB decoded) to the real gateway (``edgecore edge gateway``, its own process).  Two
runs in one command, each on a fresh gateway process:

- bounded: the gateway as it ships (``EDGECORE_MAX_DECODE_PIXELS``: images wait for their
  turn to decode);
- baseline: the same gateway with the bound lifted to the whole flood at once, which is
  what the gateway did before it had one.

Printed per run: peak RSS (sampled every 50 ms), RSS after the flood, p50 and p99
latency, and the statuses; then bounded ÷ baseline ratios.  Goals: peak RSS under
512 MB, memory given back afterwards, no 5xx.

    .venv/bin/python bench/gateway_flood.py                  # 200 clients
    .venv/bin/python bench/gateway_flood.py --clients 50     # a smoke run
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from edgecore.stack import Stack
from foundation.credentials import new_token
from foundation.settings import Settings
from testkit.flood import Flood, big_png, flood, gateway_process
from testkit.uplink import gateway_tokens

console = Console(stderr=True)
out = Console(width=150)
SIDE = 6000


def run(base: Settings, clients: int, max_decode_pixels: int, image: bytes, label: str) -> Flood:
    """One flood at a fresh gateway process whose decode budget is ``max_decode_pixels``."""
    unique = uuid.uuid4().hex[:8]
    edge, token = f"flood-{unique}", new_token()
    state = Path(tempfile.mkdtemp(prefix="gateway-flood-"))
    cfg = base.updated(
        state_dir=state,
        buckets={"edge_prefix": f"bench-{unique}-"},
        uplink={"max_decode_pixels": max_decode_pixels},
    )
    gateway_tokens(cfg, edge, devices={"camera": token}, staff={"manager": new_token()})
    console.print(f"[cyan]•[/cyan] {label}: {clients} clients, decode budget {max_decode_pixels:,} pixels")
    with gateway_process(cfg, edge, state / "gateway.log") as (url, process):
        return flood(url, process, token, image, clients)


def row(label: str, result: Flood) -> list[str]:
    server_errors = sum(n for status, n in result.statuses.items() if status >= 500)
    return [
        label,
        f"{result.idle_rss_mb:.0f}",
        f"{result.peak_rss_mb:.0f}",
        f"{result.after_rss_mb:.0f}",
        f"{np.percentile(result.latencies_s, 50):.2f}",
        f"{result.p99_s:.2f}",
        ", ".join(f"{status}×{n}" for status, n in sorted(result.statuses.items())),
        str(server_errors),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args()
    settings = Settings()
    Stack(settings).up()
    image = big_png(SIDE)
    console.print(f"[cyan]•[/cyan] the image: {len(image) / 1024:.0f} KB PNG, {SIDE}×{SIDE} pixels")
    bounded = run(settings, args.clients, settings.uplink.max_decode_pixels, image, "bounded")
    baseline = run(settings, args.clients, SIDE * SIDE * args.clients, image, "baseline (no bound)")
    table = Table(
        "gateway",
        "idle MB",
        "peak RSS MB",
        "after MB",
        "p50 s",
        "p99 s",
        "statuses",
        "5xx",
        title=f"{args.clients} concurrent {SIDE}×{SIDE} PNGs",
    )
    table.add_row(*row("bounded", bounded))
    table.add_row(*row("baseline: no bound", baseline))
    out.print(table)
    out.print(
        f"bounded ÷ baseline: peak RSS {bounded.peak_rss_mb / baseline.peak_rss_mb:.3f}, "
        f"after {bounded.after_rss_mb / baseline.after_rss_mb:.3f}, "
        f"p99 {bounded.p99_s / baseline.p99_s:.3f}"
    )
    errors = sum(n for status, n in bounded.statuses.items() if status >= 500)
    met = "met" if bounded.peak_rss_mb <= 512 else "NOT met"
    out.print(
        f"goals: peak RSS {bounded.peak_rss_mb:.0f} MB (≤ 512: {met}),"
        f" given back to {bounded.after_rss_mb:.0f} MB from {bounded.idle_rss_mb:.0f} idle, 5xx: {errors}"
    )


if __name__ == "__main__":
    main()
