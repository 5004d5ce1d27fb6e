"""What ``bench/transfer.py`` prints: the paths' throughput, the ratios against the baselines, peak RSS."""

from __future__ import annotations

from statistics import median
from typing import Any

from rich.console import Console
from rich.table import Table

BASELINES = {
    "baseline": "boto3 multipart (baseline)",
    "read_write": "boto3 multipart while reading the images from the edge bucket",
    "per_image": "boto3 put_object per image, 16 threads",
}
"""The reference paths, in the order they run and are printed, with their labels."""


def report_throughput(rounds: list[dict[str, Any]]) -> None:
    """Each path's median over the rounds (the machine is shared), then the ratios."""
    t = rounds[0]
    table = Table(
        title=f"edge → core throughput, {t['size_mb']:.0f} MB in {t['images']} images, "
        f"median of {len(rounds)} rounds"
    )
    for col in ("path", "seconds", "MB/s", "CPU seconds"):
        table.add_column(col, justify="right")

    def row(name: str, runs: list[tuple[float, dict[str, float]]]) -> float:
        seconds = median(r[0] for r in runs)
        used = ", ".join(f"{who} {median(r[1][who] for r in runs):.2f}" for who in runs[0][1])
        table.add_row(name, f"{seconds:.2f}", f"{t['size_mb'] / seconds:.1f}", used)
        return seconds

    medians = {name: row(label, [r["paths"][name] for r in rounds]) for name, label in BASELINES.items()}
    ours = row(
        "shipper → front door (TLS) → MinIO (TLS)",
        [(r["edge_to_core_s"], r["edge_to_core_cpu"]) for r in rounds],
    )
    Console(width=160).print(table)
    report_ratios(rounds, medians, ours)


def report_ratios(rounds: list[dict[str, Any]], medians: dict[str, float], ours: float) -> None:
    """The goal's ratio (and each round's, to show the spread), the references', and the CPU."""
    each = ", ".join(
        f"{r['paths']['baseline'][0] / r['edge_to_core_s']:.2f}"
        f" ({r['paths']['baseline'][0]:.2f} s / {r['edge_to_core_s']:.2f} s)"
        for r in rounds
    )
    print(f"throughput ratio edge→core / boto3 multipart = {medians['baseline'] / ours:.2f} (goal ≥ 0.9)")
    print(f"  the same ratio in each round: {each}")
    print(
        "throughput ratio edge→core / boto3 multipart while reading the edge bucket = "
        f"{medians['read_write'] / ours:.2f}"
    )
    print(
        "throughput ratio edge→core / boto3 put_object per image (16 threads) = "
        f"{medians['per_image'] / ours:.2f}"
    )
    ours_cpu = median(sum(r["edge_to_core_cpu"].values()) for r in rounds)
    base_cpu = median(sum(r["paths"]["baseline"][1].values()) for r in rounds)
    spool_cpu = median(r["spool_cpu"] for r in rounds)
    print(
        f"CPU seconds, edge→core / baseline = {ours_cpu:.2f} / {base_cpu:.2f}; the gateway's spool copies "
        f"of the set took {spool_cpu:.2f} CPU seconds when the images were accepted"
    )


def report_memory(runs: list[dict[str, Any]]) -> None:
    """Peak RSS by set size: flat growth means memory does not scale with the set."""
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
