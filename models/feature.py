"""Multi-scale ResNeXt U-Net feature extractor of ST-MFNet (Danier et al., CVPR 2022, Sec. 3.1).

The two middle frames are concatenated on channels and passed through a U-Net of
``MultiScaleResNextBlock``s: each block runs two ResNeXt bottlenecks with a small and a
large kernel side by side, concatenates them and re-weights the channels with a
squeeze-and-excitation gate. Four strided encoder blocks go down to 1/16 resolution; a
stride-1 block and three decoder blocks with grouped transposed convolutions come back up
to 1/2 resolution, adding the matching encoder output before each decoder block.

The teacher builds it with ``channels=[64, 128, 256, 512]``, the student with
``--featc`` (default ``[32, 64, 96, 128]``). Attribute names are the state-dict keys of
the published checkpoints (``conv1.resnext_small.conv1.weight``, ...).
"""
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def norm_layer_2d(norm: Optional[str]) -> Callable[[int], nn.Module]:
    """Normalisation factory for ``--featnorm``: ``'batch'`` (or None) or ``'identity'``."""
    if norm is None or norm == "batch":
        return nn.BatchNorm2d
    if norm == "identity":
        return nn.Identity
    raise ValueError(f"unknown norm_layer {norm!r}: expected 'batch', 'identity' or None")


class SEBlock(nn.Module):
    """Squeeze-and-excitation: scale each channel by a gate computed from its global mean."""

    def __init__(self, input_dim: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = input_dim // reduction
        self.fc = nn.Sequential(
            nn.Linear(input_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, input_dim),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        gate = self.fc(x.mean(dim=(2, 3)))  # (B, C)
        return x * gate[:, :, None, None]


class ResNextBlock(nn.Module):
    """ResNeXt bottleneck (1x1, grouped kxk, 1x1) with a projected shortcut where needed.

    ``down=True`` uses a strided convolution; ``down=False`` a grouped transposed convolution
    that multiplies the resolution by ``stride`` (the shortcut then uses a 2x2 transposed
    convolution with the same stride).
    """

    def __init__(
        self,
        down: bool,
        cin: int,
        cout: int,
        ks: int,
        stride: int = 1,
        groups: int = 32,
        base_width: int = 4,
        norm_layer: Optional[str] = None,
    ) -> None:
        super().__init__()
        norm = norm_layer_2d(norm_layer)
        width = int(cout * (base_width / 64.0)) * groups

        self.conv1 = nn.Conv2d(cin, width, kernel_size=1, bias=False)
        self.bn1 = norm(width)
        if down:
            self.conv2 = nn.Conv2d(
                width, width, kernel_size=ks, stride=stride, padding=(ks - 1) // 2, groups=groups, bias=False
            )
        else:
            self.conv2 = nn.ConvTranspose2d(
                width, width, kernel_size=ks, stride=stride, padding=(ks - stride) // 2, groups=groups, bias=False
            )
        self.bn2 = norm(width)
        self.conv3 = nn.Conv2d(width, cout, kernel_size=1, bias=False)
        self.bn3 = norm(cout)

        self.downsample = None
        if stride != 1 or cin != cout:
            if down:
                projection = nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)
            else:
                projection = nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=stride, bias=False)
            self.downsample = nn.Sequential(projection, norm(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class MultiScaleResNextBlock(nn.Module):
    """Two ResNeXt branches (kernel ``ks_s`` and ``ks_l``), each with ``cout // 2`` channels, then SE."""

    def __init__(
        self, down: bool, cin: int, cout: int, ks_s: int, ks_l: int, stride: int, norm_layer: Optional[str]
    ) -> None:
        super().__init__()
        self.resnext_small = ResNextBlock(down, cin, cout // 2, ks_s, stride, norm_layer=norm_layer)
        self.resnext_large = ResNextBlock(down, cin, cout // 2, ks_l, stride, norm_layer=norm_layer)
        self.attention = SEBlock(cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.attention(torch.cat([self.resnext_small(x), self.resnext_large(x)], dim=1))


class UMultiScaleResNext(nn.Module):
    """U-Net of multi-scale ResNeXt blocks: two frames (B, 3, H, W) -> features (B, channels[0], H/2, W/2)."""

    def __init__(
        self, channels: Sequence[int] = (64, 128, 256, 512), norm_layer: Optional[str] = "batch", inplanes: int = 6
    ) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"UMultiScaleResNext needs 4 channel counts, got {list(channels)}")
        c0, c1, c2, c3 = channels

        def block(down: bool, cin: int, cout: int, ks_small: int, ks_large: int, stride: int) -> nn.Module:
            return MultiScaleResNextBlock(down, cin, cout, ks_small, ks_large, stride, norm_layer=norm_layer)

        # Encoder: four stride-2 blocks, small kernel 3 and large kernel 7, then 5 at the coarser levels.
        self.conv1 = block(True, inplanes, c0, 3, 7, 2)  # 1/2
        self.conv2 = block(True, c0, c1, 3, 7, 2)  # 1/4
        self.conv3 = block(True, c1, c2, 3, 5, 2)  # 1/8
        self.conv4 = block(True, c2, c3, 3, 5, 2)  # 1/16
        # Decoder: a stride-1 block at 1/16, then transposed blocks back up to 1/2. Their kernels are even so that
        # a stride-2 transposed convolution with padding (k - 2) // 2 exactly doubles the resolution.
        self.deconv4 = block(True, c3, c3, 3, 5, 1)  # 1/16
        self.deconv3 = block(False, c3, c2, 4, 6, 2)  # 1/8
        self.deconv2 = block(False, c2, c1, 4, 8, 2)  # 1/4
        self.deconv1 = block(False, c1, c0, 4, 8, 2)  # 1/2

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        """Features of the frame pair (the two frames around the one to interpolate), both (B, 3, H, W)."""
        shape = tuple(first.shape)
        if first.shape != second.shape or first.dim() != 4:
            raise ValueError(f"expected two frames of equal shape (B, C, H, W), got {shape} and {tuple(second.shape)}")
        if shape[-2] % 16 or shape[-1] % 16:
            raise ValueError(f"frame height and width must be multiples of 16 (four stride-2 levels), got {shape}")
        enc1 = self.conv1(torch.cat([first, second], dim=1))  # (B, c0, H/2, W/2)
        enc2 = self.conv2(enc1)  # (B, c1, H/4, W/4)
        enc3 = self.conv3(enc2)  # (B, c2, H/8, W/8)
        enc4 = self.conv4(enc3)  # (B, c3, H/16, W/16)

        dec4 = self.deconv4(enc4)
        dec3 = self.deconv3(dec4 + enc4)
        dec2 = self.deconv2(dec3 + enc3)
        return self.deconv1(dec2 + enc2)


# Feature networks selectable with ``--featnet`` (the original looks the name up in this module).
FEATURE_NETWORKS = {"UMultiScaleResNext": UMultiScaleResNext}
