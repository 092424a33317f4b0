"""3D U-Net texture enhancer of ST-MFNet (Sec. 3.4) and of the ST-MFNet Mini student.

The four input frames and the coarse middle frame from the GridNet are stacked along time,
(B, 3, 5, H, W) in the order I0, I1, middle, I2, I3. An R3D-18 encoder
(``models/resnet3d.py``) and a decoder of gated 3D (transposed) convolutions with U-Net
skip connections give (B, c0, 5, H, W) features; the five time steps are concatenated on
channels, fused by a 1x1 conv and turned into a 3-channel residual that the model adds to
the coarse middle frame.

Teacher (``UNet3d_18``) and student (``student_UNet3d_18``) differ only in the widths
(``[32, 64, 96, 128]`` vs ``[16, 24, 32, 40]``) and in the width of the fused features
(``channels[0]`` vs 8). Attribute names are the state-dict keys of the published checkpoints.
"""
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.resnet3d import Conv3d, Norm, R3D18Encoder, SEGating, norm_layer_3d

# Decoder inputs are the previous decoder output concatenated with an encoder map of the same width.
_SKIP_GROWTH = 2


class Conv3dBlock(nn.Module):
    """3x3x3 conv (with bias), feature gating, norm."""

    def __init__(self, in_ch: int, out_ch: int, bn: Norm) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            Conv3d(in_ch, out_ch, kernel_size=3, padding=1, bias=True), SEGating(out_ch), norm_layer_3d(bn)(out_ch)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class UpConv3dBlock(nn.Module):
    """Transposed conv doubling H and W (kernel (3, 4, 4), stride (1, 2, 2)), feature gating, norm."""

    def __init__(self, in_ch: int, out_ch: int, bn: Norm) -> None:
        super().__init__()
        self.upconv = nn.Sequential(
            nn.ConvTranspose3d(in_ch, out_ch, kernel_size=(3, 4, 4), stride=(1, 2, 2), padding=(1, 1, 1)),
            SEGating(out_ch),
            norm_layer_3d(bn)(out_ch),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.upconv(x)


class UNet3d(nn.Module):
    """3D U-Net over the 5-frame volume; ``fuse_channels`` is the width after the time-to-channel fusion."""

    def __init__(self, channels: Sequence[int], fuse_channels: int, bn: Norm = True) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"the 3D U-Net needs 4 channel counts, got {list(channels)}")
        c0, c1, c2, c3 = channels
        self.channels = list(channels)
        self.encoder = R3D18Encoder(channels, bn)
        self.decoder = nn.ModuleList(
            [
                Conv3dBlock(c3, c2, bn),  # H/8 -> H/8, joined with encoder layer3
                UpConv3dBlock(c2 * _SKIP_GROWTH, c1, bn),  # -> H/4, joined with layer2
                UpConv3dBlock(c1 * _SKIP_GROWTH, c0, bn),  # -> H/2, joined with layer1
                Conv3dBlock(c0 * _SKIP_GROWTH, c0, bn),  # H/2, joined with the stem
                UpConv3dBlock(c0 * _SKIP_GROWTH, c0, bn),  # -> H
            ]
        )
        fuse_norm = nn.BatchNorm2d(fuse_channels) if bn else nn.Identity()
        self.feature_fuse = nn.Sequential(nn.Conv2d(c0 * 5, fuse_channels, kernel_size=1, bias=False), fuse_norm)
        self.outconv = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(fuse_channels, 3, kernel_size=7))

    def forward(self, frame0: Tensor, frame1: Tensor, frame2: Tensor, frame3: Tensor, middle: Tensor) -> Tensor:
        """Residual texture (B, 3, H, W) for ``middle``; all five inputs are (B, 3, H, W), H and W multiples of 8."""
        frames = (frame0, frame1, middle, frame2, frame3)
        if any(f.dim() != 4 or f.shape != middle.shape for f in frames) or middle.shape[1] != 3:
            raise ValueError(f"expected five frames of one shape (B, 3, H, W), got {[tuple(f.shape) for f in frames]}")
        if middle.shape[-2] % 8 or middle.shape[-1] % 8:
            raise ValueError(f"frame height and width must be multiples of 8, got {tuple(middle.shape)}")

        skips = self.encoder(torch.stack(frames, dim=2))  # (B, c, 5, h, w) at H/2, H/2, H/4, H/8, H/8
        x = skips[-1]
        for block, skip in zip(self.decoder, reversed(skips[:-1])):
            x = torch.cat([F.leaky_relu(block(x), 0.2), skip], dim=1)
        x = F.leaky_relu(self.decoder[-1](x), 0.2)  # (B, c0, 5, H, W)
        x = torch.cat(torch.unbind(x, dim=2), dim=1)  # time-major on channels: (B, 5 * c0, H, W)
        return self.outconv(F.leaky_relu(self.feature_fuse(x), 0.2))


class UNet3d_18(UNet3d):
    """Teacher texture enhancer (ST-MFNet ``dyntex_generator``)."""

    def __init__(self, channels: Sequence[int] = (32, 64, 96, 128), bn: Norm = True) -> None:
        super().__init__(channels, fuse_channels=channels[0], bn=bn)


class student_UNet3d_18(UNet3d):
    """Student texture enhancer (ST-MFNet Mini ``dyntex_generator``): narrower, fused to 8 channels."""

    def __init__(self, channels: Sequence[int] = (16, 24, 32, 40), bn: Norm = True) -> None:
        super().__init__(channels, fuse_channels=8, bn=bn)
