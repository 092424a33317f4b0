"""3D convolutions of the texture network through oneDNN, channels-last, for CPU inference.

PyTorch's CPU dispatch sends a float32 3D convolution to its generic ``slow_conv3d`` kernel;
``torch.mkldnn_convolution`` computes the same convolution (to float32 rounding) several times faster, fastest
with input and weight in ``channels_last_3d`` (which its output keeps). The transposed 3D convolutions of the
decoder take a path about 2.4 times faster at the student's full-size layer when their input is channels-last.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from deploy.cpu.fused import autocast_bfloat16, converted

_LAYOUT = torch.channels_last_3d


@torch.library.custom_op("stmfnet::onednn_conv3d", mutates_args=())
def onednn_conv3d(x: Tensor, weight: Tensor, bias: Optional[Tensor], padding: Sequence[int], stride: Sequence[int],
                  dilation: Sequence[int], groups: int) -> Tensor:
    """``torch.mkldnn_convolution`` as an opaque op, so that ``torch.compile`` calls it as it is (inference only:
    it has no autograd formula). The result is channels-last, oneDNN's own layout, whatever the input's, so that
    the compiler knows its strides."""
    output = torch.mkldnn_convolution(x, weight, bias, padding, stride, dilation, groups)
    return output.contiguous(memory_format=_LAYOUT)


@onednn_conv3d.register_fake
def _(x: Tensor, weight: Tensor, bias: Optional[Tensor], padding: Sequence[int], stride: Sequence[int],
      dilation: Sequence[int], groups: int) -> Tensor:
    size = [x.shape[0], weight.shape[0]]
    for axis in range(3):
        extent = dilation[axis] * (weight.shape[2 + axis] - 1) + 1
        size.append((x.shape[2 + axis] + 2 * padding[axis] - extent) // stride[axis] + 1)
    return torch.empty(size, dtype=x.dtype, device=x.device, memory_format=_LAYOUT)


def _inference_on_cpu(x: Tensor) -> bool:
    return (x.device.type == "cpu" and not torch.is_grad_enabled() and not torch.compiler.is_exporting()
            and torch.backends.mkldnn.enabled)


class OneDNNConv3d:
    """Route of ``nn.Conv3d`` (mixed into the model's class): oneDNN for float32 CPU inference, eager or compiled,
    and for CPU bfloat16 autocast (as autocast would cast: bfloat16 input, weight and output)."""

    def forward(self, x: Tensor) -> Tensor:
        if (not _inference_on_cpu(x) or self.weight.dtype != torch.float32 or self.padding_mode != "zeros"
                or isinstance(self.padding, str)):
            return super().forward(x)
        if autocast_bfloat16() and not torch.compiler.is_compiling():
            return torch.mkldnn_convolution(
                x.to(torch.bfloat16).contiguous(memory_format=_LAYOUT),
                converted(self.weight, torch.bfloat16).contiguous(memory_format=_LAYOUT),
                converted(self.bias, torch.bfloat16), self.padding, self.stride, self.dilation, self.groups)
        if x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu"):
            convolve = onednn_conv3d if torch.compiler.is_compiling() else torch.mkldnn_convolution
            return convolve(x.contiguous(memory_format=_LAYOUT), self.weight.contiguous(memory_format=_LAYOUT),
                            self.bias, self.padding, self.stride, self.dilation, self.groups)
        return super().forward(x)


class ChannelsLastConvTranspose3d:
    """Route of ``nn.ConvTranspose3d``: a float32 or bfloat16 CPU inference input goes in channels-last."""

    def forward(self, x: Tensor, output_size: Optional[list[int]] = None) -> Tensor:
        if _inference_on_cpu(x) and x.dtype in (torch.float32, torch.bfloat16):
            x = x.contiguous(memory_format=_LAYOUT)
        return super().forward(x, output_size)

