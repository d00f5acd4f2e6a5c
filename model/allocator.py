"""The process's allocator setting for training on the CPU.

A training step allocates and frees tensors of tens of megabytes (the recurrent layer's spikes and
gradients of every step). glibc serves blocks that large with fresh memory maps and returns them at
once, so each one is paid again in page faults, about 20 ms per 80 MB on this project's machine,
more than the arithmetic of many steps. :func:`keep_freed_memory` makes glibc keep freed blocks for
reuse instead; elsewhere (another C library) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_LIMIT = 1 << 30


def keep_freed_memory() -> bool:
    """Serves blocks up to 1 GiB from the heap and keeps freed memory for reuse (glibc's
    ``mallopt``). Returns whether the setting took effect."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _LIMIT)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 * _LIMIT))
