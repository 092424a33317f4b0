"""The one check of the private PyTorch entry points the CPU inference route calls.

The route calls oneDNN through ``torch.ops.mkldnn._convolution_pointwise`` (a convolution with a fused activation
or add) and ``torch.mkldnn_convolution`` (3D convolutions). Neither is public API: another PyTorch release may
rename them, change their arguments or drop them. :func:`onednn_unavailable_reason` calls each once on a small case and
compares it with the plain convolution, so that ``deploy.cpu.accelerate`` can leave a model on its plain layers
(correct frames, only slower) where they are missing or different.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

# Largest difference from the plain convolution accepted on the probe's small case (float32 rounding is ~1e-6).
_TOLERANCE = 1e-4


@functools.cache
def onednn_unavailable_reason() -> str | None:
    """None if the private oneDNN entry points exist and match the plain convolutions, else why not."""
    if not torch.backends.mkldnn.is_available():
        return "this PyTorch build has no oneDNN"
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 6, 7, generator=generator).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(5, 4, 3, 3, generator=generator)
    bias = torch.randn(5, generator=generator)
    residual = torch.randn(1, 5, 6, 7, generator=generator).contiguous(memory_format=torch.channels_last)
    volume = torch.randn(1, 4, 3, 6, 7, generator=generator)
    weight_3d = torch.randn(5, 4, 3, 3, 3, generator=generator)
    plain = F.conv2d(x, weight, bias, padding=1)
    try:
        with torch.no_grad():
            checks = {
                "mkldnn._convolution_pointwise (leaky_relu)": (
                    torch.ops.mkldnn._convolution_pointwise(
                        x, weight, bias, [1, 1], [1, 1], [1, 1], 1, "leaky_relu", [0.25], ""),
                    F.leaky_relu(plain, 0.25)),
                "mkldnn._convolution_pointwise (add)": (
                    torch.ops.mkldnn._convolution_pointwise(
                        x, residual, weight, bias, [1, 1], [1, 1], [1, 1], 1, "add", None, None, [], None),
                    plain + residual),
                "mkldnn_convolution (3D)": (
                    torch.mkldnn_convolution(volume, weight_3d, None, [1, 1, 1], [1, 1, 1], [1, 1, 1], 1),
                    F.conv3d(volume, weight_3d, padding=1)),
            }
    except (AttributeError, RuntimeError, TypeError) as error:
        return f"{type(error).__name__}: {error}"
    for name, (got, expected) in checks.items():
        if got.shape != expected.shape or not torch.allclose(got, expected, rtol=_TOLERANCE, atol=_TOLERANCE):
            return f"{name} does not match the plain convolution"
    return None
