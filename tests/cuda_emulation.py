"""Run the ops' CUDA kernel sources on the CPU, so their arithmetic is tested on machines without a GPU.

The kernels use grid-stride loops, so one "thread" (block 0, thread 0, one block of one thread) visits every
index in order. A small shim maps the CUDA keywords to plain C++ and ``atomicAdd`` to a sequential add; the
source is compiled with the system C++ compiler into a shared library and called through ctypes with the same
arguments the CuPy launcher would pass.
"""
import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import torch

_SHIM = r"""
#include <cmath>
#include <algorithm>
using std::min;
using std::max;
using std::floor;
struct Dim3 { long long x, y, z; };
static const Dim3 blockIdx = {0, 0, 0}, threadIdx = {0, 0, 0}, blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
#define __global__
#define __device__
template <typename T> T atomicAdd(T* address, T value) { T old = *address; *address += value; return old; }
"""

_SCALAR_TYPES = {torch.float32: "float", torch.float64: "double"}


def compiler_available() -> bool:
    return shutil.which("g++") is not None


@lru_cache(maxsize=None)
def _library(source: str, scalar_type: str) -> ctypes.CDLL:
    code = f"typedef {scalar_type} scalar_t;\n{_SHIM}\n{source}"
    digest = hashlib.sha1(code.encode()).hexdigest()[:16]
    build_dir = Path(tempfile.gettempdir()) / "stmfnet_cuda_emulation"
    build_dir.mkdir(exist_ok=True)
    library = build_dir / f"kernels_{digest}.so"
    if not library.exists():
        source_file = build_dir / f"kernels_{digest}.cpp"
        source_file.write_text(code)
        partial = build_dir / f"kernels_{digest}.so.partial"
        # -ffp-contract=off: no fused multiply-adds, so float32 rounding follows the source line by line.
        subprocess.run(["g++", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(partial),
                        str(source_file)], check=True, capture_output=True)
        partial.replace(library)
    return ctypes.CDLL(str(library))


def emulated_launch(source: str, name: str, num_threads: int, *args) -> None:
    """Drop-in replacement for ``cupy_module._cuda.launch`` that runs on CPU tensors."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    scalar_type = _SCALAR_TYPES[next(t.dtype for t in tensors if t.is_floating_point())]
    for tensor in tensors:
        if not tensor.is_contiguous():
            raise ValueError(f"kernel {name} got a non-contiguous tensor")
    function = getattr(_library(source, scalar_type), name)
    function(ctypes.c_longlong(num_threads),
             *[ctypes.c_void_p(a.data_ptr()) if isinstance(a, torch.Tensor) else ctypes.c_longlong(a) for a in args])
