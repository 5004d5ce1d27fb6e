"""Keep the data path's memory flat and its buffers warm: tune glibc's allocator once per process.

The receiver and the shipper move a set through buffers of up to one image (at most
``max_member_bytes``) and network chunks, on many threads; no buffer is ever as big as
a multipart part (parts are sent as the buffers they were written in).  glibc's defaults
are wrong for that traffic twice over:

* its mmap threshold adapts: each freed mapping raises it, so buffers of one size come
  from mmap at first and from per-thread heap arenas later, and those arenas fragment
  (the peak RSS grew with the set size);
* below the threshold, heap memory freed at the top of a heap is handed back to the
  kernel once more than 128 KiB is free; with mmap above it every buffer is a fresh
  mapping.  Either way each new buffer is faulted in page by page, which on a virtual
  machine costs more CPU than copying the bytes.

Called by the uplink's build functions (``edge_sync.uplink.service``), since it changes
the whole process.  So the threshold is fixed at glibc's maximum (no buffer of the data path is mmapped, and
no adaptation happens), up to ``TRIM_BYTES`` of free heap is kept for the next buffers,
and the threads share ``ARENAS`` arenas, which bounds how much free memory can be held:
the peak RSS of a 1 GB set is within a few percent of a 100 MB set's (``bench/transfer.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from typing import Any

log = logging.getLogger(__name__)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
"""glibc's largest allowed value on 64-bit (``DEFAULT_MMAP_THRESHOLD_MAX``): above any image."""
TRIM_BYTES = 32 * 1024 * 1024
ARENAS = 2
_done = False
_decoding = False
"""A gateway process: its shipper thread keeps the gateway's threshold (memory under a flood first)."""


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
    for option, value in (
        (M_ARENA_MAX, ARENAS),
        (M_TRIM_THRESHOLD, TRIM_BYTES),
        (M_MMAP_THRESHOLD, DECODE_MMAP_BYTES if _decoding else MMAP_THRESHOLD_BYTES),
    ):
        if mallopt(option, value) != 1:
            log.warning("mallopt(%d, %d) was refused: memory may grow with the set size", option, value)


DECODE_MMAP_BYTES = 4 * 1024 * 1024
"""The gateway's threshold: decoded pixels (Pillow allocates them in 16 MiB blocks) are mapped."""


def bound_decode_memory() -> None:
    """The gateway's tuning, once per process: large decodes are mapped, so freeing them gives the
    memory back at once, and two arenas bound what the request threads keep.

    glibc's adaptive threshold would move Pillow's pixel blocks into per-thread heap arenas
    after the first one was freed, where they stay, fragmented, after a flood of images.
    """
    global _decoding
    _decoding = True
    _mallopt((M_ARENA_MAX, ARENAS), (M_MMAP_THRESHOLD, DECODE_MMAP_BYTES))


def _mallopt(*settings: tuple[int, int]) -> None:
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return
    for option, value in settings:
        if mallopt(option, value) != 1:
            log.warning("mallopt(%d, %d) was refused", option, value)


def release_free_memory() -> None:
    """Hand the heap's free memory back to the system (glibc's ``malloc_trim``); after a large decode."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None
