"""The figures each step records for the plumbing benchmark, in its output artifact's metadata.

``compute_s`` is the step's own wall time (from the clock's start, after the wrapper's
imports, to the end of its work).  ``cpu_s`` is the CPU the step's own work used, and
``process_cpu_s`` the CPU of the whole step subprocess so far (interpreter start-up, the
KFP executor and the imports included): on a shared machine CPU seconds are a steadier
measure than wall time, and their difference is what running the step as a process costs.
"""

from __future__ import annotations

import time


class StepClock:
    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def figures(self) -> dict[str, float]:
        cpu = time.process_time()
        return {
            "compute_s": time.perf_counter() - self.wall,
            "cpu_s": cpu - self.cpu,
            "process_cpu_s": cpu,
        }
