"""Keep the data path's memory flat: large buffers go back to the kernel when freed.

The receiver and the shipper move a set through buffers of one image (about 1 MB) to one
multipart part (8 MB) on many threads.  glibc raises its mmap threshold each time such a
buffer is freed, so later ones come from per-thread heap arenas instead, and those
fragment: the peak RSS then grows with the size of the set although the live memory does
not.  Fixing the threshold (``mallopt(M_MMAP_THRESHOLD)``, which also switches the
dynamic adjustment off) keeps every large buffer in its own mapping, unmapped when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)
M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 256 * 1024
_done = False


def bound_large_allocations() -> None:
    """Once per process; a no-op where the C library is not glibc."""
    global _done
    if _done:
        return
    _done = True
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    if mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES) != 1:
        log.warning("mallopt(M_MMAP_THRESHOLD) was refused: memory may grow with the set size")
