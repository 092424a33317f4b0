"""The three custom ops of ST-MFNet: AdaCoF warping, softmax splatting and PWC-Net correlation.

Each op dispatches on its input: a CUDA tensor runs a CuPy kernel (when CuPy is installed), anything else runs a
vectorised pure-PyTorch path that computes the same numbers. Both paths support float32 and float64.
"""

from cupy_module._cuda import cupy_available, set_cupy_enabled

__all__ = ["cupy_available", "set_cupy_enabled"]
