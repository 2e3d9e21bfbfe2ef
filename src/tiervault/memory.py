"""Keeping the C heap from growing with the data: a fixed ``mmap`` threshold for glibc's malloc.

Snapshots and restores allocate many short-lived buffers of 0.5-8 MiB (file reads, chunk copies,
compressed and decrypted blobs) from several threads. glibc serves an allocation above its ``mmap``
threshold with its own mapping, returned to the system on ``free``, but it *raises* that threshold to
the size of every such block freed (up to 32 MiB): after the first large ``free`` (a chunker's 16 MiB
stream buffer at the end of a large file does it), chunk-sized buffers come from the per-thread
heaps, which fragment and keep their peak. Measured on the bench corpus (docs/performance.md): peak RSS of
an initial snapshot 203 -> 157 MB, of a full restore 185 -> 123 MB, with a fixed threshold.

:func:`tune_allocator` sets the threshold once per process (``mallopt(M_MMAP_THRESHOLD)``, which also
turns the dynamic raising off). It changes only where glibc puts large blocks, not how much a
program may allocate. The ``tiervault`` command calls it at start unless the environment has
``TIERVAULT_MALLOC_TUNING=0``; the library never does (it is not its process): a service opts in by
calling ``tiervault.tune_allocator()``. It does nothing on other C libraries or when the variable
``MALLOC_MMAP_THRESHOLD_`` already says what the process owner wants.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
import threading

log = logging.getLogger("tiervault.memory")

#: blocks from this size up get their own mapping (glibc's initial default is 128 KiB)
DEFAULT_MMAP_THRESHOLD = 256 * 1024
_M_MMAP_THRESHOLD = -3  # <malloc.h>
_lock = threading.Lock()
_decided: list[bool] = []  # the first call's outcome


def tune_allocator(mmap_threshold: int = DEFAULT_MMAP_THRESHOLD) -> bool:
    """Fix glibc's ``mmap`` threshold for this process (see the module doc). True if it is in effect.

    Idempotent and thread-safe; the first call decides. Returns False without changing anything when
    ``TIERVAULT_MALLOC_TUNING=0``, when ``MALLOC_MMAP_THRESHOLD_`` is set, or off glibc.
    """
    with _lock:
        if not _decided:
            _decided.append(_apply(mmap_threshold))
        return _decided[0]


def _apply(threshold: int) -> bool:
    if os.environ.get("TIERVAULT_MALLOC_TUNING", "").strip() == "0":
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok: bool = mallopt(_M_MMAP_THRESHOLD, threshold) == 1
    log.debug("malloc mmap threshold fixed at %d bytes: %s", threshold, ok)
    return ok
