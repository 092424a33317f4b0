"""AdaCoF kernel estimation at three scales, and the AdaCoF warp that applies the kernels.

AdaCoF (Lee et al., CVPR 2020) synthesises each output pixel as a weighted sum of F x F samples of an input
frame taken at learned offsets. ST-MFNet (Danier et al., CVPR 2022, Sec. 3.1) predicts such kernels for both
middle frames at 1/2, 1 and 2x resolution from one feature map at 1/2 resolution: 18 small sub-networks
(weights, vertical offsets alpha, horizontal offsets beta) x (frame 1, frame 2) x (three scales).

The sub-networks are built from one table; their attribute names (``moduleWeight1_ds``, ``moduleAlpha1``,
``moduleBeta2_us``, ...) and the layer indices inside them are the state-dict keys of the published checkpoints.
"""
from __future__ import annotations

from torch import Tensor, nn

from cupy_module.adacof import adacof

# Frame scale -> (state-dict suffix of its sub-networks, upsampling of the 1/2-resolution features; None: none).
SCALES = {"half": ("_ds", None), "full": ("", 2), "double": ("_us", 4)}
# What each sub-network predicts; weights are softmax-normalised over the F*F taps, offsets are unbounded.
KINDS = ("Weight", "Alpha", "Beta")
FRAMES = (1, 2)


def _subnetwork(in_channels: int, channels: int, taps: int, upsample: int | None, softmax: bool) -> nn.Sequential:
    """Three 3x3 convs; when upsampling: ReLU, bilinear upsampling, and a 3x3 conv at the target resolution."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, channels, kernel_size=3, stride=1, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, taps, kernel_size=3, stride=1, padding=1),
    ]
    if upsample is not None:
        layers += [
            nn.ReLU(),
            nn.Upsample(scale_factor=upsample, mode="bilinear", align_corners=True),
            nn.Conv2d(taps, taps, kernel_size=3, stride=1, padding=1),
        ]
    if softmax:
        layers.append(nn.Softmax(dim=1))
    return nn.Sequential(*layers)


class KernelEstimation(nn.Module):
    """Predicts AdaCoF weights and offsets for two frames at three scales from (B, in_channels, h, w) features.

    The teacher uses ``in_channels=channels=64`` (its feature extractor's first width); the student uses its
    ``featc[0]`` input channels and 30 hidden channels. Output: 18 tensors (B, F*F, s*h, s*w) in the order of
    ``names``: for each scale (1/2, 1, 2x), frame 1 then frame 2, weight/alpha/beta; s = 1, 2, 4 for the 1/2, 1
    and 2x frame scales.
    """

    def __init__(self, kernel_size: int = 5, in_channels: int = 64, channels: int = 64) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.names: list[str] = []
        for suffix, upsample in SCALES.values():
            for frame in FRAMES:
                for kind in KINDS:
                    name = f"module{kind}{frame}{suffix}"
                    softmax = kind == "Weight"
                    setattr(self, name, _subnetwork(in_channels, channels, kernel_size**2, upsample, softmax))
                    self.names.append(name)

    def forward(self, features: Tensor) -> tuple[Tensor, ...]:
        return tuple(getattr(self, name)(features) for name in self.names)

    def subnetworks(self, scale: str, frame: int) -> list[nn.Sequential]:
        """The (weight, alpha, beta) sub-networks of one frame (1 or 2) at one scale ("half", "full" or "double").

        Lets a caller make one frame's three kernels just before its warp instead of holding all 18 (at 1080p the
        six 2x maps alone take 5 GiB in float32).
        """
        suffix, _ = SCALES[scale]
        return [getattr(self, f"module{kind}{frame}{suffix}") for kind in KINDS]


class AdaCoFWarp(nn.Module):
    """AdaCoF warp of a frame with replication padding, so that the output has the frame's size."""

    def __init__(self, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.dilation = dilation
        pad = (kernel_size - 1) * dilation // 2
        self.pad = nn.ReplicationPad2d(pad)

    def forward(self, frame: Tensor, weight: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        """``weight``, ``alpha`` (vertical offsets) and ``beta`` (horizontal offsets): (B, F*F, H, W)."""
        return adacof(self.pad(frame), weight, alpha, beta, self.dilation)
