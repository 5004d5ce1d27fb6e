"""Waiting on a condition, never on a clock: what every test that waits uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout_s: float = 60.0, every_s: float = 0.1, what: str = "condition"
) -> T:
    """Poll until ``predicate()`` is truthy; returns its value (fails the test on timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)
