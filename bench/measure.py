"""What the benches that start their own processes share: CPU seconds and peak RSS per process.

The paths under test run in child processes (controllers, receivers, shippers), so their
cost is read from the kernel per process rather than from inside this one.
"""

from __future__ import annotations

from pathlib import Path

import psutil


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process: on a shared machine, what the paths compete for."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def peak_rss_mb(pid: int) -> float:
    """The kernel's high-water mark of a process's RSS (``VmHWM``): nothing is sampled or missed."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")
