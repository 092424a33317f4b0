"""Layer stacks run with each convolution fused with the activation or residual add that follows it, for CPU
inference.

oneDNN can apply a ReLU, a leaky ReLU (a one-parameter PReLU is one) or an element-wise add to a convolution's
output while it is still in cache. At twice the frame size the GridNet's maps are 30-70 MB each, and a separate
pass over one costs more than half of the convolution that made it. Bilinear upsampling and the PReLU after it
likewise take one pass (``models/resize.py``).

The fused route is taken only where it cannot change what a user sees beyond float32 rounding: float32 CPU
tensors with autograd and autocast off (oneDNN's fused ops have no backward, and would bypass autocast), outside
``torch.compile`` and ONNX export. Everywhere else (training, float64, CUDA, export, bfloat16 autocast), and inside
:func:`plain_layers`, the layers run as themselves, so those numbers are exactly the unfused ones.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import torch
from torch import Tensor, nn

from models.resize import upsample

# Read once, as models/resnet3d.py does: torch.compile cannot trace the query.
ONEDNN_AVAILABLE = torch.backends.mkldnn.is_available()
_plain = False


@contextmanager
def plain_layers() -> Iterator[None]:
    """Run every layer as itself, so that op-level accounting (FLOP counting) sees the standard ops."""
    global _plain
    previous, _plain = _plain, True
    try:
        yield
    finally:
        _plain = previous


def fused_route(x: Tensor) -> bool:
    """Whether layers applied to ``x`` may be fused (see the module docstring)."""
    # Tracing first: the compiler then never looks at the rest.
    return (not torch.compiler.is_compiling() and not torch.compiler.is_exporting() and not _plain
            and x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu") and ONEDNN_AVAILABLE and torch.backends.mkldnn.enabled)


def run_layers(layers: Sequence[nn.Module], x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
    """``nn.Sequential(*layers)(x)`` (+ ``residual``, of the output's shape), fusing each convolution with a ReLU
    or one-parameter PReLU after it or with the residual add, and each upsampling with a PReLU after it."""
    if not fused_route(x):
        for layer in layers:
            x = layer(x)
        return x if residual is None else x + residual
    index, last = 0, len(layers) - 1
    while index <= last:
        layer = layers[index]
        following = layers[index + 1] if index < last else None
        if _fusable_conv(layer):
            activation = _activation_attribute(following)
            if activation is not None:
                x = _convolution(layer, x, *activation)
                index += 2
                continue
            if index == last and residual is not None:
                return _convolution_add(layer, x, residual)
        if isinstance(layer, nn.Upsample):
            with_prelu = isinstance(following, nn.PReLU)
            x = upsample(layer, x, following if with_prelu else None)
            index += 2 if with_prelu else 1
            continue
        x = layer(x)
        index += 1
    return x if residual is None else x + residual


def _fusable_conv(layer: nn.Module) -> bool:
    return (isinstance(layer, nn.Conv2d) and layer.weight.dtype == torch.float32
            and layer.padding_mode == "zeros" and not isinstance(layer.padding, str))


def _activation_attribute(activation: Optional[nn.Module]) -> Optional[tuple[str, list]]:
    """oneDNN's name and arguments for ``activation``; None if it has no fused form."""
    if isinstance(activation, nn.ReLU):
        return "relu", []
    if isinstance(activation, nn.PReLU) and activation.num_parameters == 1:
        # PReLU with one slope is a leaky ReLU with that slope: x for x >= 0, slope * x otherwise.
        return "leaky_relu", [activation.weight.item()]
    return None


def _convolution(conv: nn.Conv2d, x: Tensor, name: str, scalars: list) -> Tensor:
    return torch.ops.mkldnn._convolution_pointwise(
        x, conv.weight, conv.bias, conv.padding, conv.stride, conv.dilation, conv.groups, name, scalars, ""
    )


def _convolution_add(conv: nn.Conv2d, x: Tensor, residual: Tensor) -> Tensor:
    return torch.ops.mkldnn._convolution_pointwise(
        x, residual, conv.weight, conv.bias, conv.padding, conv.stride, conv.dilation, conv.groups,
        "add", None, None, [], None,
    )
