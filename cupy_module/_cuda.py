"""Shared plumbing for the CuPy kernels: when to use them, compiling once per device and dtype, launching.

CuPy is imported lazily so that CPU-only machines can import every op.
"""
from functools import lru_cache

import torch

THREADS_PER_BLOCK = 512

_SCALAR_TYPES = {torch.float32: "float", torch.float64: "double"}

_cupy_enabled = True



def autocast_forward(forward):
    """Run an op's forward in float32 under autocast (CUDA float16 as with --fp16, or CPU bfloat16).

    The kernels have no half-precision version, and AdaCoF's truncated offsets would lose too much in 16 bits.
    """
    for device_type in ("cuda", "cpu"):
        forward = torch.amp.custom_fwd(device_type=device_type, cast_inputs=torch.float32)(forward)
    return forward


def autocast_backward(backward):
    """The matching backward: runs with the autocast state of the forward."""
    for device_type in ("cuda", "cpu"):
        backward = torch.amp.custom_bwd(device_type=device_type)(backward)
    return backward


def set_cupy_enabled(enabled: bool) -> None:
    """Choose whether CUDA tensors use the CuPy kernels (default) or the pure-PyTorch path, e.g. to compare them."""
    global _cupy_enabled
    _cupy_enabled = bool(enabled)


@lru_cache(maxsize=None)
def cupy_available() -> bool:
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


def use_cuda_kernel(tensor: torch.Tensor) -> bool:
    """True when ``tensor`` lives on a GPU and CuPy can run the op's kernel there."""
    return tensor.is_cuda and _cupy_enabled and cupy_available()


@lru_cache(maxsize=None)
def _compiled_function(source: str, name: str, scalar_type: str, device_index: int):
    import cupy

    # The kernels are written against `scalar_t`; one module is compiled per dtype and device.
    code = f"typedef {scalar_type} scalar_t;\n{source}"
    with cupy.cuda.Device(device_index):
        module = cupy.RawModule(code=code, options=("-std=c++14",))
        return module.get_function(name)


def launch(source: str, name: str, num_threads: int, *args) -> None:
    """Run kernel ``name`` of ``source`` over ``num_threads`` threads on torch's current stream.

    Every kernel takes the thread count as its first parameter (``long long n``), then ``args``: tensors are
    handed over zero-copy (DLPack) and must be contiguous; Python ints become 64-bit ints. The kernel's scalar
    type is taken from the first floating tensor argument.
    """
    import cupy

    if num_threads == 0:
        return
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    scalar_type = _SCALAR_TYPES[next(t.dtype for t in tensors if t.is_floating_point())]
    device_index = tensors[0].device.index
    function = _compiled_function(source, name, scalar_type, device_index)
    kernel_args = [cupy.int64(num_threads)] + [
        cupy.from_dlpack(a.detach()) if isinstance(a, torch.Tensor) else cupy.int64(a) for a in args
    ]
    stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(tensors[0].device).cuda_stream)
    blocks = (num_threads + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
    with cupy.cuda.Device(device_index):
        function((blocks,), (THREADS_PER_BLOCK,), tuple(kernel_args), stream=stream)


def check_float_tensors(op: str, **tensors: torch.Tensor) -> None:
    """Common input checks of the ops: 4-D floating tensors of one dtype on one device."""
    first_name, first = next(iter(tensors.items()))
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.dim() != 4:
            raise ValueError(f"{op}: {name} must be 4-D (B, C, H, W), got shape {tuple(tensor.shape)}")
        if tensor.dtype not in _SCALAR_TYPES:
            raise ValueError(f"{op}: {name} must be float32 or float64, got {tensor.dtype}")
        if tensor.dtype != first.dtype:
            raise ValueError(f"{op}: {name} is {tensor.dtype} but {first_name} is {first.dtype}")
        if tensor.device != first.device:
            raise ValueError(f"{op}: {name} is on {tensor.device} but {first_name} is on {first.device}")
        if tensor.shape[0] != first.shape[0]:
            raise ValueError(
                f"{op}: batch sizes differ: {name} {tuple(tensor.shape)} vs {first_name} {tuple(first.shape)}"
            )
