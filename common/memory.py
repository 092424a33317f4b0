"""Allocator setting for the command-line tools: for frames up to 960x540 pixels, large blocks come from the heap
and freed memory is kept for reuse.

A forward pass allocates and frees maps of 30-70 MB dozens of times (the GridNet's row at twice the frame size).
glibc's malloc serves every block above its mmap threshold (32 MiB at most) with a fresh mapping, so each such map
costs a page fault and a zero-fill per 4 KiB page: about 200 000 faults per student forward at 256x448, 10 million
at 1080p. Served from the heap, and kept there when freed, the next map reuses the same pages (the student's
forward on a 2-core machine: about 20 % faster at 256x448, 27-31 % at 480x854, 30 % at 1080p; the teacher's 42 %
at 480x854). The price is fragmentation: memory freed inside the heap stays resident, and a hole left by a freed
map is often a few bytes short of the next 64-byte-aligned map of the same size; the peak grew by 15 % at 256x448,
by 35-50 % at 480x854 (to 2.4-2.6 GiB for the student, 3.6 GiB for the teacher) and by 84 % at 1080p. So the
tools turn it on for frames of at most :data:`HEAP_REUSE_MAX_PIXELS` (480p and 540p video, 512-pixel tiles) and
off (handing the kept memory back) for larger ones.

The setting belongs to the process, so only the scripts make it: at start-up they call :func:`allow_heap_reuse`
and wrap their interpolator in :func:`heap_reuse_by_frame_size`; library code leaves the allocator alone.
"""
from __future__ import annotations

import ctypes
import functools
import sys
from typing import Callable, Optional, TypeVar

from torch import Tensor

# Frames (or tiles) of at most this many pixels run with heap reuse.
HEAP_REUSE_MAX_PIXELS = 960 * 540
# mallopt parameters and glibc's defaults (malloc.h, malloc.c).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
_LARGEST_TRIM_THRESHOLD = 2**31 - 1

_allowed = False
_reusing = False
Result = TypeVar("Result")


def allow_heap_reuse() -> None:
    """Let :func:`heap_reuse_for` change the allocator (the tools call this when run as scripts; a program that
    imports the project keeps its allocator as it is)."""
    global _allowed
    _allowed = True


def heap_reuse_for(height: int, width: int) -> bool:
    """Turn heap reuse on for frames of ``height`` x ``width`` up to :data:`HEAP_REUSE_MAX_PIXELS` pixels, off above;
    whether it is on. Does nothing unless allowed, off Linux, or under another C library than glibc."""
    global _reusing
    libc = _glibc() if _allowed else None
    if libc is None:
        return False
    wanted = height * width <= HEAP_REUSE_MAX_PIXELS
    if wanted != _reusing:
        if wanted:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, _LARGEST_TRIM_THRESHOLD)
        else:
            libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
            libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
            libc.malloc_trim(0)
        _reusing = wanted
    return _reusing


def heap_reuse_by_frame_size(interpolate: Callable[..., Result]) -> Callable[..., Result]:
    """``interpolate(frame0, frame1, frame2, frame3)`` with heap reuse set for the size of its frames first."""
    def run(*frames: Tensor) -> Result:
        heap_reuse_for(*frames[1].shape[-2:])
        return interpolate(*frames)

    return run


@functools.cache
def _glibc() -> Optional[ctypes.CDLL]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc
