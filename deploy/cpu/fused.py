"""Layer stacks run with each convolution fused with the activation or residual add that follows it.

oneDNN can apply a ReLU, a leaky ReLU (a one-parameter PReLU is one) or an element-wise add to a convolution's
output while it is still in cache. At twice the frame size the GridNet's maps are 30-70 MB each, and a separate
pass over one costs more than half of the convolution that made it. Bilinear upsampling and the PReLU after it
likewise take one pass (``deploy/cpu/resize.py``).

:func:`run_layers` fuses only where :func:`fused_route` allows it: CPU inference (autograd off; oneDNN's fused ops
have no backward) outside ``torch.compile`` and ONNX export, on float32 tensors, where it matches the plain layers
to float32 rounding, and under CPU bfloat16 autocast, where the fused convolutions run in bfloat16 as autocast would
run them (bfloat16 input, weight and output; a fused residual add is rounded to bfloat16 too, where autocast would
promote it). Anywhere else the layers run as themselves.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn
from torch.utils.weak import WeakIdKeyDictionary

from deploy.cpu.resize import upsample

# Parameters converted for bfloat16 convolutions, with the parameter version they were converted from.
_converted = WeakIdKeyDictionary()


def fused_route(x: Tensor) -> bool:
    """Whether layers applied to ``x`` may be fused (see the module docstring)."""
    # Tracing first: the compiler then never looks at the rest.
    if (torch.compiler.is_compiling() or torch.compiler.is_exporting() or x.device.type != "cpu"
            or torch.is_grad_enabled() or not torch.backends.mkldnn.enabled):
        return False
    if torch.is_autocast_enabled("cpu"):
        return autocast_bfloat16() and x.dtype in (torch.float32, torch.bfloat16)
    return x.dtype == torch.float32


def autocast_bfloat16() -> bool:
    """Whether CPU autocast to bfloat16 is on."""
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def compute_dtype() -> torch.dtype:
    """The dtype fused convolutions run in: bfloat16 under CPU bfloat16 autocast, else float32."""
    return torch.bfloat16 if autocast_bfloat16() else torch.float32


def converted(parameter: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]:
    """``parameter`` in ``dtype``, converted once per version of the parameter rather than on every call."""
    if parameter is None or parameter.dtype == dtype:
        return parameter
    version, copy = _converted.get(parameter, (None, None))
    if version != parameter._version or copy.dtype != dtype:
        copy = parameter.detach().to(dtype)
        _converted[parameter] = (parameter._version, copy)
    return copy


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
    dtype = compute_dtype()
    return torch.ops.mkldnn._convolution_pointwise(
        x.to(dtype), converted(conv.weight, dtype), converted(conv.bias, dtype), conv.padding, conv.stride,
        conv.dilation, conv.groups, name, scalars, "",
    )


def _convolution_add(conv: nn.Conv2d, x: Tensor, residual: Tensor) -> Tensor:
    dtype = compute_dtype()
    return torch.ops.mkldnn._convolution_pointwise(
        x.to(dtype), residual.to(dtype), converted(conv.weight, dtype), converted(conv.bias, dtype), conv.padding,
        conv.stride, conv.dilation, conv.groups, "add", None, None, [], None,
    )
