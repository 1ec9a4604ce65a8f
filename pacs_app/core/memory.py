"""Keep the C allocator from handing large blocks back to the kernel after every request, and
keep Python's cycle collector from walking the whole application on the request path.

Rendering a frame allocates a few arrays of a megabyte or so. glibc serves blocks that large
with mmap and returns them with munmap when they are freed (its adaptive threshold does not
settle in a multi-threaded server), so every request faulted in about 4 MB of fresh pages
again: about 1,000 page faults, which tripled the cost of a 512x512 render. Raising the mmap
and trim thresholds keeps that memory in the process for the next request.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
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


# Allocations between young-generation collections (Python's default is 700) and how many
# collections of one generation make one of the next.
YOUNG_THRESHOLD = 50_000
OLDER_THRESHOLDS = (20, 100)


def tune_collector() -> None:
    """Move the objects that exist once the app is loaded (about 170,000: modules, the pages'
    components, SQLAlchemy's mappers) out of the collector's reach, and collect young cycles
    less often.

    A full collection of that heap takes about 70 ms, and one was due every few hundred
    requests; a young collection every 700 allocations ran several times per upload. Uploads
    of one instance per request went about 8% faster with two clients. Cycles are still
    collected; objects made later are collected as usual."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
