"""ST-MFNet, the teacher (Danier, Zhang and Bull, "ST-MFNet: A Spatio-Temporal Multi-Flow Network for Frame
Interpolation", CVPR 2022), and the forward pass it shares with the ST-MFNet Mini student.

Given frames I0, I1, I2, I3 the network synthesises the frame halfway between I1 and I2:
1. all frames are reflect-padded at the bottom and right to multiples of 128 (the feature U-Net's four stride-2
   levels, the GridNet's two and PWC-Net's pyramid then divide evenly) and the result is cropped back at the end;
   sides of 64 pixels or less, which the original could not pad, are mirrored repeatedly (``models/scales.py``);
2. a U-Net of multi-scale ResNeXt blocks turns (I1, I2) into features, from which AdaCoF kernels are predicted
   and applied to both frames at 1/2, 1 and 2x resolution (Sec. 3.1);
3. the teacher adds two softmax-splatted frames driven by bidirectional PWC-Net flow (Sec. 3.2);
4. a GridNet fuses the three scales into a coarse middle frame (Sec. 3.3);
5. a 3D U-Net over (I0, I1, middle, I2, I3) adds a residual for dynamic textures (Sec. 3.4).

Module attribute names are the state-dict keys of the published checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cupy_module.softsplat import ModuleSoftsplat
from models.feature import FEATURE_NETWORKS
from models.gridnet import MIMOGridNet
from models.kernel_estimation import AdaCoFWarp, KernelEstimation
from models.pwcnet import Network as PWCNet
from models.pwcnet import backwarp
from models.scales import Upsampler_8tap, downsample_half, gaussian_kernel, normalize_frame, pad_to_multiple
from models.texture import UNet3d_18

PAD_MULTIPLE = 128
# PWC-Net predicts flow divided by 20 (the scaling of its training targets).
PWC_FLOW_SCALE = 20.0


@dataclass(frozen=True)
class ModelConfig:
    """Constructor options; names and defaults are those of the original scripts' flags (``evaluate.py``).

    ``featc`` sets the student's feature widths (the teacher's are fixed). ``finetune_pwc=False`` freezes the
    teacher's PWC-Net. ``pwc_weights`` (new) optionally names a local pytorch-pwc ``.pytorch`` file to start
    PWC-Net from; the default is a random initialisation (the original downloaded these weights).
    """

    featc: Sequence[int] = (32, 64, 96, 128)
    featnet: str = "UMultiScaleResNext"
    featnorm: Optional[str] = "batch"
    kernel_size: int = 5
    dilation: int = 1
    finetune_pwc: bool = False
    pwc_weights: Optional[str] = None

    @classmethod
    def from_args(cls, args: Any = None, **overrides: Any) -> ModelConfig:
        """Read the fields from an argparse namespace (other attributes are ignored), then apply ``overrides``."""
        names = [field.name for field in fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TypeError(f"unknown model option(s) {unknown}; valid options: {names}")
        values = {name: getattr(args, name) for name in names if hasattr(args, name)}
        values.update(overrides)
        return cls(**values)


def build_feature_extractor(config: ModelConfig, channels: Sequence[int]) -> nn.Module:
    if config.featnet not in FEATURE_NETWORKS:
        raise ValueError(f"unknown feature network {config.featnet!r}; valid: {sorted(FEATURE_NETWORKS)}")
    return FEATURE_NETWORKS[config.featnet](channels=list(channels), norm_layer=config.featnorm)


def _check_frames(frames: Sequence[Tensor]) -> None:
    shapes = [tuple(frame.shape) for frame in frames]
    if any(len(shape) != 4 or shape[1] != 3 for shape in shapes) or any(shape != shapes[0] for shape in shapes):
        raise ValueError(f"expected four RGB frames of one shape (B, 3, H, W), got shapes {shapes}")


class STMFNetBase(nn.Module):
    """Padding, features, three-scale AdaCoF, GridNet fusion, 3D U-Net residual and cropping.

    Subclasses set ``dyntex_generator`` after adding their own modules (which keeps the original parameter
    order) and may add full-scale candidates to the GridNet input through :meth:`flow_candidates`.
    """

    dyntex_generator: nn.Module

    def __init__(
        self,
        config: ModelConfig,
        feature_channels: Sequence[int],
        kernel_channels: int,
        full_scale_channels: int,
        grid_channels: Sequence[int],
    ) -> None:
        super().__init__()
        self.config = config
        self.feature_extractor = build_feature_extractor(config, feature_channels)
        self.get_kernel = KernelEstimation(
            config.kernel_size, in_channels=feature_channels[0], channels=kernel_channels
        )
        self.adacof = AdaCoFWarp(config.kernel_size, config.dilation)
        # Frozen Parameters rather than buffers, as in the published checkpoints (they count as parameters there).
        blur = gaussian_kernel(5, 0.5, dtype=torch.float64).to(torch.get_default_dtype())
        self.gauss_kernel = nn.Parameter(blur.repeat(3, 1, 1, 1), requires_grad=False)
        self.upsampler = Upsampler_8tap()
        # One GridNet row per scale: 2x, full (two AdaCoF frames + any flow candidates), 1/2; output from row 1.
        self.scale_synthesis = MIMOGridNet(
            (6, full_scale_channels, 6), (3,), grid_chs=tuple(grid_channels), n_row=3, n_col=4, outrow=(1,)
        )

    def flow_candidates(self, frame1: Tensor, frame2: Tensor) -> list[Tensor]:
        """Extra full-scale estimates of the middle frame, concatenated after the two AdaCoF results."""
        return []

    def forward(self, frame0: Tensor, frame1: Tensor, frame2: Tensor, frame3: Tensor) -> Tensor | dict[str, Tensor]:
        """Frames (B, 3, H, W) at t = -3, -1, +1, +3; returns the frame at t = 0 (``{"frame1": ...}`` in training)."""
        _check_frames((frame0, frame1, frame2, frame3))
        height, width = frame1.shape[-2:]
        frame0, frame1, frame2, frame3 = (
            pad_to_multiple(frame, PAD_MULTIPLE) for frame in (frame0, frame1, frame2, frame3)
        )

        features = self.feature_extractor(normalize_frame(frame1), normalize_frame(frame2))

        def warp_pair(scale: str, first: Tensor, second: Tensor) -> list[Tensor]:
            return [self._warp(features, scale, index, frame) for index, frame in ((1, first), (2, second))]

        full_scale = warp_pair("full", frame1, frame2)
        half_scale = warp_pair("half", *(downsample_half(frame, self.gauss_kernel) for frame in (frame1, frame2)))
        double_scale = warp_pair("double", *(self.upsampler(frame) for frame in (frame1, frame2)))
        full_scale += self.flow_candidates(frame1, frame2)

        grid_inputs = (torch.cat(scale, dim=1) for scale in (double_scale, full_scale, half_scale))
        output_tilde = self.scale_synthesis(*grid_inputs)[0]
        output = output_tilde + self.dyntex_generator(frame0, frame1, frame2, frame3, output_tilde)
        output = output[..., :height, :width]
        return {"frame1": output} if self.training else output

    def _warp(self, features: Tensor, scale: str, index: int, frame: Tensor) -> Tensor:
        """AdaCoF of ``frame`` (1 or 2) at ``scale`` with the kernels predicted from ``features``."""
        subnetworks = self.get_kernel.subnetworks(scale, index)
        # Kernels are made just before use and dropped after it, which bounds the memory of large frames.
        return self.adacof(frame, *(subnetwork(features) for subnetwork in subnetworks))


class Metric(nn.Module):
    """Splatting importance: ``paramScale`` times the brightness-constancy error of the backward-warped frame.

    With ``paramScale < 0`` pixels that do not match their flow target get less weight in softmax splatting.
    """

    def __init__(self) -> None:
        super().__init__()
        self.paramScale = nn.Parameter(-torch.ones(1, 1, 1, 1))

    def forward(self, first: Tensor, second: Tensor, flow_first_to_second: Tensor) -> Tensor:
        error = F.l1_loss(first, backwarp(second, flow_first_to_second), reduction="none")
        return self.paramScale * error.mean(1, keepdim=True)


class STMFNet(STMFNetBase):
    """The teacher: AdaCoF at three scales plus softmax splatting with PWC-Net flow."""

    def __init__(self, args: Any = None, **overrides: Any) -> None:
        config = ModelConfig.from_args(args, **overrides)
        super().__init__(
            config,
            feature_channels=(64, 128, 256, 512),
            kernel_channels=64,
            full_scale_channels=12,
            grid_channels=(32, 64, 96),
        )
        self.flow_estimator = PWCNet(config.pwc_weights)
        self.softsplat = ModuleSoftsplat("softmax")
        self.metric = Metric()
        self.dyntex_generator = UNet3d_18(bn=config.featnorm)
        # As in the original: frozen unless fine-tuned, but still run with autograd (nothing is detached).
        if not config.finetune_pwc:
            self.flow_estimator.requires_grad_(False)

    def _flow(self, first: Tensor, second: Tensor, pyramids: tuple[list[Tensor], list[Tensor]]) -> Tensor:
        # Resized to frame size without rescaling the vectors, as in the original (PWC-Net works at 1/4 size).
        flow = PWC_FLOW_SCALE * self.flow_estimator(first, second, *pyramids)
        return F.interpolate(flow, size=first.shape[-2:], mode="bilinear", align_corners=False)

    def flow_candidates(self, frame1: Tensor, frame2: Tensor) -> list[Tensor]:
        pyramid1, pyramid2 = self.flow_estimator.extract_pyramid(frame1, frame2)
        flow_1_to_2 = self._flow(frame1, frame2, (pyramid1, pyramid2))
        flow_2_to_1 = self._flow(frame2, frame1, (pyramid2, pyramid1))
        metric_1_to_2 = self.metric(frame1, frame2, flow_1_to_2)
        metric_2_to_1 = self.metric(frame2, frame1, flow_2_to_1)
        # Linear motion: the middle frame lies at half of each flow.
        return [
            self.softsplat(frame1, 0.5 * flow_1_to_2, metric_1_to_2),
            self.softsplat(frame2, 0.5 * flow_2_to_1, metric_2_to_1),
        ]
