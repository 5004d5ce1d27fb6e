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


def exit_once_written() -> None:
    """End the step process as soon as the KFP executor has written its outputs.

    A step that loaded TensorFlow spends seconds in interpreter teardown (module clean-up,
    native destructors, idle tf.data threads), and one with boto3 or a Kafka client a
    fraction of one: time the pipeline waits for and nothing needs, because the executor's
    output file is written and closed before the interpreter starts to exit.  The
    executor never calls ``sys.exit``, so an exit with no uncaught exception is a
    success: then stdio and logging are flushed and the process ends with status 0.
    An uncaught exception (seen by ``sys.excepthook``) leaves the normal exit alone, so
    a failed step still exits non-zero with its traceback.  Anywhere but the executor's
    own process (a test or a notebook calling the wrapper) it does nothing.
    """
    import atexit
    import logging
    import os
    import sys

    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if getattr(spec, "name", None) != "kfp.dsl.executor_main":
        return
    failed = False
    previous_hook = sys.excepthook

    def note_failure(*exc_info: object) -> None:
        nonlocal failed
        failed = True
        previous_hook(*exc_info)  # type: ignore[arg-type]

    def leave() -> None:
        if failed:
            return
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(0)

    sys.excepthook = note_failure
    atexit.register(leave)  # registered last, so it runs first
