"""Allocator setting for the command-line tools: large blocks from the heap, freed memory kept for reuse.

A forward pass allocates and frees maps of 30-70 MB dozens of times (the GridNet's row at twice the frame size).
glibc's malloc serves every block above its mmap threshold (32 MiB at most) with a fresh mapping, so each such map
costs a page fault and a zero-fill per 4 KiB page: about 200 000 faults and half a second of system time per
student forward at 256x448 on a 2-core machine. Served from the heap, and kept there when freed, the next map
reuses the same pages. The price is that memory freed below the top of the heap is not handed back to the
system before the process ends, so the resident size stays near its peak.
"""
from __future__ import annotations

import ctypes
import sys

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_LARGEST_TRIM_THRESHOLD = 2**31 - 1


def reuse_freed_memory() -> bool:
    """Ask glibc's malloc to serve large blocks from the heap and to keep freed memory; whether it applied (not
    off Linux or under another C library)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _LARGEST_TRIM_THRESHOLD))
