"""Bilinear upsampling of the GridNet and the kernel estimation in one pass, for CPU inference.

``F.interpolate`` on a channels-last float32 map runs at about a third of the machine's memory bandwidth, and the
GridNet follows each 2x upsampling with a PReLU, another full pass over a map of up to 67 MB. For float32 CPU
inference (autograd off, outside ``torch.compile`` and ONNX export) a numba kernel does both in one pass, with
PyTorch's source-index and weight arithmetic (``area_pixel_compute_source_index``), so results agree with
``F.interpolate`` to float32 rounding. Everywhere else, or without numba, the PyTorch ops run unchanged.
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

try:
    import numba
except ImportError:  # numba is optional: the PyTorch ops below are the reference path
    numba = None
else:
    # numba's GNU OpenMP layer deadlocks a process forked after it ran (torch.multiprocessing, data loaders);
    # its own pthread work queue does not.
    numba.config.THREADING_LAYER = "workqueue"


@functools.lru_cache(maxsize=32)
def _source_table(out_size: int, in_size: int, scale: float, align_corners: bool) -> tuple[np.ndarray, ...]:
    """Per output position: the two source indices and their weights, as PyTorch computes them in float32.

    Cached: the banded warp asks for the same tables band after band. Read-only arrays."""
    position = np.arange(out_size, dtype=np.float32)
    if align_corners:
        source = np.float32(scale) * position
    else:
        source = np.maximum(np.float32(scale) * (position + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    first = source.astype(np.int64)
    second = np.minimum(first + 1, in_size - 1)
    second_weight = (source - first.astype(np.float32)).astype(np.float32)
    table = first, second, np.float32(1) - second_weight, second_weight
    for array in table:
        array.flags.writeable = False
    return table


def _interpolation_scale(in_size: int, out_size: int, scale_factor: Optional[float], align_corners: bool) -> float:
    if align_corners:
        return (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    return 1.0 / scale_factor if scale_factor else in_size / out_size


if numba is not None:
    @numba.njit(parallel=True, cache=True)
    def _bilinear_nhwc(image, out, rows, columns, slope):  # pragma: no cover - compiled
        top, bottom, top_weight, bottom_weight = rows
        left, right, left_weight, right_weight = columns
        batch, out_height = out.shape[0], out.shape[1]
        out_width, channels = out.shape[2], out.shape[3]
        for item in numba.prange(batch * out_height):
            b, y = item // out_height, item % out_height
            upper, lower = image[b, top[y]], image[b, bottom[y]]
            wy0, wy1 = top_weight[y], bottom_weight[y]
            for x in range(out_width):
                x0, x1, wx0, wx1 = left[x], right[x], left_weight[x], right_weight[x]
                for c in range(channels):
                    value = (wy0 * (wx0 * upper[x0, c] + wx1 * upper[x1, c])
                             + wy1 * (wx0 * lower[x0, c] + wx1 * lower[x1, c]))
                    out[b, y, x, c] = value if value >= 0 else slope * value


def _kernel_route(x: Tensor) -> bool:
    return (numba is not None and x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4
            and not torch.is_grad_enabled() and x.is_contiguous(memory_format=torch.channels_last)
            and not torch.compiler.is_compiling() and not torch.compiler.is_exporting())


def upsample(layer: nn.Upsample, x: Tensor, activation: Optional[nn.Module] = None,
             rows: Optional[slice] = None) -> Tensor:
    """``activation(layer(x))`` for a bilinear ``nn.Upsample`` with an integer ``scale_factor``; ``activation``
    (optional) is a one-parameter PReLU. ``rows`` (a slice with start and stop) limits the result to those rows."""
    slope = None if activation is None else activation.weight
    if (not _kernel_route(x) or layer.mode != "bilinear" or layer.size is not None
            or (slope is not None and slope.numel() != 1)):
        out = layer(x) if activation is None else activation(layer(x))
        return out if rows is None else out[..., rows, :]
    factor = float(layer.scale_factor)
    height, width = x.shape[-2:]
    out_height, out_width = int(height * factor), int(width * factor)
    align = bool(layer.align_corners)
    row_table = _source_table(out_height, height, _interpolation_scale(height, out_height, factor, align), align)
    if rows is not None:
        row_table = tuple(column[rows] for column in row_table)
    columns = _source_table(out_width, width, _interpolation_scale(width, out_width, factor, align), align)
    out = torch.empty(x.shape[0], x.shape[1], len(row_table[0]), out_width, dtype=x.dtype,
                      memory_format=torch.channels_last)
    numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    _bilinear_nhwc(x.permute(0, 2, 3, 1).numpy(), out.permute(0, 2, 3, 1).numpy(), row_table, columns,
                   np.float32(1.0 if slope is None else slope.item()))
    return out
