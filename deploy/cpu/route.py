"""``accelerate(model)``: the CPU inference route, put into a built network by module replacement.

The network in ``models/`` is the plain PyTorch computation. For inference on the CPU, :func:`accelerate` gives
some of its modules a faster ``forward`` with the same parameters, state-dict keys and results (to float32
rounding; bfloat16 autocast within its own rounding):
- GridNet blocks and the AdaCoF kernel sub-networks fuse each convolution with the activation or residual add after
  it, and each bilinear upsampling with the PReLU after it (``deploy/cpu/fused.py``, ``deploy/cpu/resize.py``);
- the full- and double-scale AdaCoF warps make their kernel maps band by band (``deploy/cpu/banded_warp.py``);
- 3D convolutions run through oneDNN, channels-last (``deploy/cpu/conv3d.py``);
- the 2D network runs channels-last (the feature extractor's and the GridNet's inputs, the frames the AdaCoF warps
  read, the tap softmax), where oneDNN runs NHWC convolutions about twice as fast as NCHW.

Each replaced ``forward`` checks its input on every call and runs the plain module for anything but CPU inference
(autograd on, CUDA, float64, ONNX export), so an accelerated model still trains, exports and moves to a GPU
correctly. The route's private PyTorch entry points are checked once (``deploy/cpu/probe.py``); where they are
missing or differ, the model keeps its plain layers and a warning says so.
"""
from __future__ import annotations

import logging
from typing import Optional

import torch
from torch import Tensor, nn

from deploy.cpu.banded_warp import banded_route, warp_in_bands
from deploy.cpu.conv3d import ChannelsLastConvTranspose3d, OneDNNConv3d
from deploy.cpu.fused import run_layers
from deploy.cpu.probe import onednn_unavailable_reason
from models.feature import UMultiScaleResNext
from models.gridnet import DownSamplingBlock, LateralBlock, MIMOGridNet, UpSamplingBlock
from models.kernel_estimation import KernelEstimation
from models.resnet3d import Conv3d
from models.stmfnet import STMFNetBase

logger = logging.getLogger(__name__)


def _channels_last_route(x: Tensor) -> bool:
    """Float32 CPU inference, eager or compiled (the layout suits the compiled graph as well)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()


def _channels_last(x: Tensor) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last) if _channels_last_route(x) else x


class FusedLateralBlock:
    """Route of ``LateralBlock``: its last convolution adds the shortcut."""

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.conv(x) if hasattr(self, "conv") else x
        return run_layers(self.f, x, residual=shortcut)


class FusedResamplingBlock:
    """Route of ``DownSamplingBlock`` and ``UpSamplingBlock``: the last convolution adds ``residual``."""

    def forward(self, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        return run_layers(self.f, x, residual)


class FusedSequential:
    """Route of an AdaCoF kernel sub-network (an ``nn.Sequential``)."""

    def forward(self, x: Tensor) -> Tensor:
        return run_layers(self, x)


class TapSoftmax(nn.Module):
    """``nn.Softmax(dim=1)`` that keeps a channels-last input channels-last.

    ``nn.Softmax(dim=1)`` returns a channels-first tensor whatever its input, and the AdaCoF CPU path would then
    transpose it back band by band. Same values; no parameters, so the state dict is unchanged.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            return torch.softmax(x.permute(0, 2, 3, 1), dim=-1).permute(0, 3, 1, 2)
        return torch.softmax(x, dim=1)


class ChannelsLastGridNet:
    """Route of ``MIMOGridNet``: its inputs go in channels-last."""

    def forward(self, *inputs: Tensor) -> list[Tensor]:
        return super().forward(*(_channels_last(x) for x in inputs))


class ChannelsLastFeatures:
    """Route of the feature U-Net: the frame pair goes in channels-last, and the layout carries through."""

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        return super().forward(_channels_last(first), _channels_last(second))


class BandedWarps:
    """Route of the network (``STMFNetBase``): channels-last frames into the AdaCoF warps, and at full and double
    scale the kernel maps made band by band with the warp."""

    def _warp(self, features: Tensor, scale: str, index: int, frame: Tensor) -> Tensor:
        frame = _channels_last(frame)
        subnetworks = self.get_kernel.subnetworks(scale, index)
        if banded_route(frame, subnetworks):
            return warp_in_bands(subnetworks, features, self.adacof.pad(frame), self.adacof.dilation)
        return super()._warp(features, scale, index, frame)


# Module class -> the route mixed into it (exact classes: a replaced module is never replaced again).
ROUTES: dict[type, type] = {
    LateralBlock: FusedLateralBlock,
    DownSamplingBlock: FusedResamplingBlock,
    UpSamplingBlock: FusedResamplingBlock,
    MIMOGridNet: ChannelsLastGridNet,
    UMultiScaleResNext: ChannelsLastFeatures,
    Conv3d: OneDNNConv3d,
    nn.ConvTranspose3d: ChannelsLastConvTranspose3d,
}
_routed_classes: dict[tuple[type, type], type] = {}


def _mix_in(module: nn.Module, route: type) -> None:
    """Give ``module`` the ``forward`` (or methods) of ``route``, keeping its class's others and its state."""
    base = type(module)
    if (route, base) not in _routed_classes:
        _routed_classes[route, base] = type(f"{route.__name__}{base.__name__}", (route, base),
                                            {"__module__": __name__})
    module.__class__ = _routed_classes[route, base]


def accelerate(model: nn.Module) -> nn.Module:
    """Put the CPU inference route into ``model`` in place and return it (see the module docstring).

    A model whose parameters are not on the CPU, or a PyTorch without the route's oneDNN entry points, keeps its
    plain layers. Calling it again changes nothing."""
    if any(parameter.device.type != "cpu" for parameter in model.parameters()):
        logger.debug("accelerate: the model is not on the CPU; it keeps its plain layers")
        return model
    reason = onednn_unavailable_reason()
    if reason is not None:
        logger.warning("the fast CPU route is unavailable in PyTorch %s (%s): running the plain layers, which give "
                       "the same frames more slowly", torch.__version__, reason)
        return model
    for module in list(model.modules()):
        if type(module) in ROUTES:
            _mix_in(module, ROUTES[type(module)])
        if isinstance(module, KernelEstimation):
            for name in module.names:
                subnetwork = getattr(module, name)
                if type(subnetwork) is nn.Sequential:
                    _mix_in(subnetwork, FusedSequential)
                if isinstance(subnetwork[-1], nn.Softmax):
                    subnetwork[-1] = TapSoftmax().train(subnetwork[-1].training)  # keeps the model's mode
        if isinstance(module, STMFNetBase) and not isinstance(module, BandedWarps):
            _mix_in(module, BandedWarps)
    return model
