"""common/memory.py: with heap reuse on, a freed large block's pages are reused instead of faulted in afresh; it is on
only for frames up to 480p, and only where a tool allowed it."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Minor page faults of the second of two 64 MiB blocks malloc'd, filled and freed one after the other, in a fresh
# process that first calls heap_reuse_for(height, width) (after allow_heap_reuse() if asked).
SCRIPT = """
import ctypes, resource, sys
from common import memory
if sys.argv[1] == "allowed":
    memory.allow_heap_reuse()
states = [memory.heap_reuse_for(*map(int, size.split("x"))) for size in sys.argv[2:]]
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, (ctypes.c_size_t,), (ctypes.c_void_p,)
for round in range(2):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(2**26)
    ctypes.memset(block, 1, 2**26)
    libc.free(block)
print(*states, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
FRESH_PAGES = 2**26 // 4096


def _faults(allowed: str, *sizes: str) -> tuple[list[str], int]:
    result = subprocess.run([sys.executable, "-c", SCRIPT, allowed, *sizes], capture_output=True, text=True,
                            check=True, cwd=REPO_ROOT)
    *states, faults = result.stdout.split()
    return states, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_heap_reuse_keeps_freed_pages_for_small_frames_only():
    states, faults = _faults("allowed", "256x448")
    assert states == ["True"] and faults < FRESH_PAGES // 16
    states, faults = _faults("allowed", "256x448", "1080x1920")  # turned off again for a large frame
    assert states == ["True", "False"] and faults >= FRESH_PAGES
    states, _ = _faults("allowed", "480x854", "540x960", "720x1280")  # 480p and 540p video, not 720p
    assert states == ["True", "True", "False"]
    states, faults = _faults("not-allowed", "256x448")  # a program importing the project keeps its allocator
    assert states == ["False"] and faults >= FRESH_PAGES
