"""Giving memory back to the operating system.

CPython frees large objects (callback bodies) with ``free``; glibc keeps freed heap memory for reuse
instead of returning it, so a process that once held a few hundred megabytes (a spool-full episode,
a burst of large bodies) stays that large. Two calls into glibc fix that: blocks above a fixed size
are served by ``mmap`` (returned to the system as soon as they are freed), and after an episode
``malloc_trim`` returns what the heap no longer uses. Elsewhere (not glibc) both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

#: glibc's mallopt parameter number for the mmap threshold.
M_MMAP_THRESHOLD = -3
#: Blocks from this size up are mmapped: larger than most allocations, smaller than a large body.
MMAP_THRESHOLD_BYTES = 256 * 1024


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim  # noqa: B018 - present only in glibc
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def mmap_large_blocks(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Serve blocks of ``threshold`` bytes and more by mmap, so freeing one returns it at once."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, threshold))


def release_free_memory() -> bool:
    """Return free heap memory to the system (glibc ``malloc_trim``); True if some was returned."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
