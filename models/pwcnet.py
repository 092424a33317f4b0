"""PWC-Net optical flow (Sun et al., CVPR 2018), as re-implemented by S. Niklaus ("pytorch-pwc").

ST-MFNet (the teacher) uses it for the bidirectional flows that drive softmax splatting (Danier et al.,
CVPR 2022, Sec. 3.2). The network reads top-down: the backward warp, the six-level feature pyramid, one
coarse-to-fine decoder per level, the dilated refiner, the full network and the loader for sniklaus' weights.

Attribute names (``netExtractor``, ``netTwo`` ... ``netSix``, ``netRefiner``, ``netOne`` ... inside) are the
state-dict keys of the published checkpoints and stay as they are. The network starts from a random
initialisation: nothing is ever downloaded; pretrained weights are loaded from a local ``.pytorch`` file on request.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common.files import PathType
from models.checkpoint import read_torch_file
from cupy_module.correlation import correlation
from models.checkpoint import refuse_non_finite, state_dict_mismatches

# Channels of the feature pyramid, finest (1/2 resolution) to coarsest (1/64).
PYRAMID_CHANNELS = (16, 32, 64, 96, 128, 196)
# Output widths of the densely connected convolutions in every decoder, before the final 2-channel flow conv.
DECODER_WIDTHS = (128, 128, 96, 64, 32)
# Decoder levels with the attribute name each one has in the checkpoints (the flow is estimated coarse to fine).
DECODER_NAMES = {2: "netTwo", 3: "netThr", 4: "netFou", 5: "netFiv", 6: "netSix"}
# Flow from the coarser level is upsampled x2 and scaled before warping: 20 / 2**level (flow is predicted /20).
WARP_SCALE = {5: 0.625, 4: 1.25, 3: 2.5, 2: 5.0}
# (output channels, dilation) of the refiner's 3x3 convolutions: a growing receptive field, then back to flow.
REFINER_LAYERS = ((128, 1), (128, 2), (128, 4), (96, 8), (64, 16), (32, 1), (2, 1))
COST_VOLUME_CHANNELS = 81  # 9x9 displacements (max displacement 4) of the correlation layer
LEAKY_SLOPE = 0.1


def backwarp(frame: Tensor, flow: Tensor) -> Tensor:
    """Warp ``frame`` (B, C, H, W) backwards by ``flow`` (B, 2, H, W; channel 0 = x) and zero invalid pixels.

    Quirk kept from pytorch-pwc: the grid holds pixel centres (``align_corners=False`` convention) but the
    flow is normalised by ``(W - 1) / 2`` and ``(H - 1) / 2``. A channel of ones is warped along; pixels where it
    falls to 0.999 or below sampled outside the frame and are set to zero (the mask carries no gradient).
    """
    batch, _, height, width = flow.shape
    horizontal = _pixel_centres(width, flow)
    vertical = _pixel_centres(height, flow)
    grid = torch.stack(torch.meshgrid(horizontal, vertical, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
    # Divided channel by channel (not by a tensor made from the sizes), so that an exported graph keeps them dynamic.
    flow_x, flow_y = flow.permute(0, 2, 3, 1).unbind(-1)
    sample_at = grid + torch.stack([flow_x / ((frame.shape[3] - 1.0) / 2.0), flow_y / ((frame.shape[2] - 1.0) / 2.0)],
                                   dim=-1)

    ones = flow.new_ones(batch, 1, height, width)
    warped = F.grid_sample(
        torch.cat([frame, ones], dim=1), sample_at, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    valid = (warped[:, -1:] > 0.999).to(warped.dtype)  # a comparison: no gradient through the mask
    return warped[:, :-1] * valid


def _pixel_centres(size: int, like: Tensor) -> Tensor:
    """``linspace(-1 + 1/size, 1 - 1/size, size)``; under ONNX export the same centres from ``arange`` (within
    float rounding), because ``linspace`` would fix the traced size in the graph."""
    if torch.compiler.is_exporting():
        return (torch.arange(size, dtype=like.dtype, device=like.device) * 2 + 1) / size - 1
    return torch.linspace(-1.0 + 1.0 / size, 1.0 - 1.0 / size, size, dtype=like.dtype, device=like.device)


def _conv_leaky(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=dilation, dilation=dilation),
        nn.LeakyReLU(negative_slope=LEAKY_SLOPE),
    ]


class Extractor(nn.Module):
    """Six-level feature pyramid; each level halves the resolution (strided conv, then two 3x3 convs)."""

    level_names = ("netOne", "netTwo", "netThr", "netFou", "netFiv", "netSix")

    def __init__(self) -> None:
        super().__init__()
        in_channels = 3
        for name, channels in zip(self.level_names, PYRAMID_CHANNELS):
            layers = _conv_leaky(in_channels, channels, stride=2)
            layers += _conv_leaky(channels, channels) + _conv_leaky(channels, channels)
            setattr(self, name, nn.Sequential(*layers))
            in_channels = channels

    def forward(self, frame: Tensor) -> list[Tensor]:
        pyramid = []
        for name in self.level_names:
            frame = getattr(self, name)(frame)
            pyramid.append(frame)
        return pyramid


def _decoder_input_channels(level: int) -> int:
    """Cost volume, plus (below the coarsest level) the first frame's features, upsampled flow and feature."""
    if level == 6:
        return COST_VOLUME_CHANNELS
    return COST_VOLUME_CHANNELS + PYRAMID_CHANNELS[level - 1] + 2 + 2


class Decoder(nn.Module):
    """Flow estimator of one pyramid level: cost volume -> densely connected convs -> flow (predicted / 20)."""

    layer_names = ("netOne", "netTwo", "netThr", "netFou", "netFiv")

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level
        in_channels = _decoder_input_channels(level)
        if level < 6:
            coarser_features = _decoder_input_channels(level + 1) + sum(DECODER_WIDTHS)
            self.netUpflow = nn.ConvTranspose2d(2, 2, kernel_size=4, stride=2, padding=1)
            self.netUpfeat = nn.ConvTranspose2d(coarser_features, 2, kernel_size=4, stride=2, padding=1)
        for name, width in zip(self.layer_names, DECODER_WIDTHS):
            setattr(self, name, nn.Sequential(*_conv_leaky(in_channels, width)))
            in_channels += width
        self.netSix = nn.Sequential(nn.Conv2d(in_channels, 2, kernel_size=3, stride=1, padding=1))

    def forward(
        self, first: Tensor, second: Tensor, coarser: Optional[tuple[Tensor, Tensor]] = None
    ) -> tuple[Tensor, Tensor]:
        """Return ``(flow, features)`` of this level; ``coarser`` is the same pair from the level above."""
        if coarser is None:
            features = F.leaky_relu(correlation(first, second), LEAKY_SLOPE)
        else:
            coarser_flow, coarser_features = coarser
            flow = self.netUpflow(coarser_flow)
            upsampled_features = self.netUpfeat(coarser_features)
            warped_second = backwarp(second, flow * WARP_SCALE[self.level])
            volume = F.leaky_relu(correlation(first, warped_second), LEAKY_SLOPE)
            features = torch.cat([volume, first, flow, upsampled_features], dim=1)
        for name in self.layer_names:
            features = torch.cat([getattr(self, name)(features), features], dim=1)
        return self.netSix(features), features


class Refiner(nn.Module):
    """Context network: dilated convolutions that add a residual to the finest decoder's flow."""

    def __init__(self) -> None:
        super().__init__()
        in_channels = _decoder_input_channels(2) + sum(DECODER_WIDTHS)
        layers: list[nn.Module] = []
        for out_channels, dilation in REFINER_LAYERS:
            layers += _conv_leaky(in_channels, out_channels, dilation=dilation)
            in_channels = out_channels
        self.netMain = nn.Sequential(*layers[:-1])  # no activation after the flow output

    def forward(self, features: Tensor) -> Tensor:
        return self.netMain(features)


class Network(nn.Module):
    """PWC-Net. Returns flow from the first to the second frame at 1/4 resolution, divided by 20."""

    def __init__(self, weights_path: Optional[PathType] = None) -> None:
        super().__init__()
        self.netExtractor = Extractor()
        for level, name in DECODER_NAMES.items():
            setattr(self, name, Decoder(level))
        self.netRefiner = Refiner()
        if weights_path is not None:
            load_pwc_weights(self, weights_path)

    def extract_pyramid(self, first: Tensor, second: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Feature pyramids of both frames, so that both flow directions can share them."""
        return self.netExtractor(first), self.netExtractor(second)

    def forward(
        self,
        first: Tensor,
        second: Tensor,
        first_pyramid: Optional[list[Tensor]] = None,
        second_pyramid: Optional[list[Tensor]] = None,
    ) -> Tensor:
        if first_pyramid is None or second_pyramid is None:
            first_pyramid, second_pyramid = self.extract_pyramid(first, second)
        estimate = None
        for level, name in sorted(DECODER_NAMES.items(), reverse=True):
            # Decoder level L works on pyramid entry L - 1 (entry 0 has 1/2 resolution).
            estimate = getattr(self, name)(first_pyramid[level - 1], second_pyramid[level - 1], estimate)
        flow, features = estimate
        return flow + self.netRefiner(features)


def remap_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename the keys of sniklaus' published weights (``moduleExtractor...``) to ours (``netExtractor...``)."""
    return {key.replace("module", "net"): value for key, value in state_dict.items()}


def load_pwc_weights(network: Network, path: PathType) -> None:
    """Load pretrained pytorch-pwc weights (e.g. ``network-default.pytorch``) strictly into ``network``.

    A missing file raises FileNotFoundError; a file that is not readable, not PWC-Net weights or holds NaN or infinite
    weights, ValueError naming it.
    """
    state_dict = read_torch_file(path)
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"{path} holds a {type(state_dict).__name__}, not pytorch-pwc weights")
    state_dict = remap_state_dict(state_dict)
    problems = state_dict_mismatches(network, state_dict)
    if problems:
        raise ValueError(f"{path} does not hold pytorch-pwc weights; nothing was loaded. " + "; ".join(problems))
    refuse_non_finite(state_dict, str(path))
    network.load_state_dict(state_dict, strict=True)
