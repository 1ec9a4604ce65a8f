"""Keep the C allocator from handing large blocks back to the kernel after every request.

Rendering a frame allocates a few arrays of a megabyte or so. glibc serves blocks that large
with mmap and returns them with munmap when they are freed (its adaptive threshold does not
settle in a multi-threaded server), so every request faulted in about 4 MB of fresh pages
again: about 1,000 page faults, which tripled the cost of a 512x512 render. Raising the mmap
and trim thresholds keeps that memory in the process for the next request.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's own ceiling for the adaptive threshold
TRIM_THRESHOLD = 128 * 1024 * 1024

_done = False


def keep_freed_memory() -> bool:
    """Set the thresholds (glibc only; elsewhere nothing happens). Returns whether they were
    set."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not _done:
        log.warning("could not set the allocator's thresholds; rendering will be slower")
    return _done
