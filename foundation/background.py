"""A service's loop in a thread of its own, for as long as a ``with`` block runs.

Gateways and controllers run several loops beside their server (shippers, syncs); each
takes a stop event and returns once it is set.  Leaving the block sets it and waits a
bounded time for the loop's round to end, so a stuck round cannot hold a shutdown.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def in_background(
    loop: Callable[[threading.Event], None], name: str, join_s: float = 30.0
) -> Iterator[threading.Event]:
    """``loop(stop)`` in a daemon thread named ``name``; ``stop`` is set when the block ends."""
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(stop,), name=name, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=join_s)
