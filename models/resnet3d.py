"""3D ResNet-18 encoder of ST-MFNet's texture enhancer (Sec. 3.4).

R3D-18 (Tran et al., "A Closer Look at Spatiotemporal Convolutions for Action
Recognition", CVPR 2018) with the channel-wise feature gating of FLAVR (Kalluri et al.)
after every residual branch, as used by ST-MFNet. Widths are configurable (teacher
``[32, 64, 96, 128]``, student ``[16, 24, 32, 40]``); the stem and layers 2-3 halve the
spatial resolution, time is never strided.

Attribute names (``stem.0``, ``layer2.0.conv1.0``, ``layer2.0.downsample.1``, ``fg.attn_layer.0``, ...)
are the state-dict keys of the published checkpoints.
"""
from typing import Callable, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

Norm = Union[bool, str, None]


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` (same parameters and state-dict keys) that exports to ONNX without a bias as well.

    torch 2.14's ONNX exporter gives a bias-free Conv3d a misshapen zero bias; an explicit one exports right.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.bias is None and torch.compiler.is_exporting():
            return self._conv_forward(x, self.weight, self.weight.new_zeros(self.out_channels))
        return super().forward(x)


def norm_layer_3d(bn: Norm) -> Callable[[int], nn.Module]:
    """BatchNorm3d when ``bn`` is truthy (the models pass the string ``'batch'``), else identity."""
    return nn.BatchNorm3d if bn else nn.Identity


class SEGating(nn.Module):
    """FLAVR feature gating: multiply each channel by sigmoid(1x1x1 conv of the global channel means)."""

    def __init__(self, inplanes: int) -> None:
        super().__init__()
        self.attn_layer = nn.Sequential(Conv3d(inplanes, inplanes, kernel_size=1, bias=True), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attn_layer(x.mean(dim=(2, 3, 4), keepdim=True))


class BasicBlock(nn.Module):
    """Two 3x3x3 conv + norm layers, feature gating, residual add, ReLU."""

    def __init__(self, inplanes: int, planes: int, stride: Tuple[int, int, int], bn: Norm) -> None:
        super().__init__()
        norm = norm_layer_3d(bn)
        self.conv1 = nn.Sequential(
            Conv3d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False),
            norm(planes),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(Conv3d(planes, planes, kernel_size=3, padding=1, bias=False), norm(planes))
        self.fg = SEGating(planes)
        self.downsample = None
        if stride != (1, 1, 1) or inplanes != planes:
            self.downsample = nn.Sequential(
                Conv3d(inplanes, planes, kernel_size=1, stride=stride, bias=False), norm(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.fg(self.conv2(self.conv1(x)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return (out + shortcut).relu()


class R3D18Encoder(nn.Module):
    """R3D-18 feature pyramid: (B, 3, T, H, W) -> five maps at H/2, H/2, H/4, H/8, H/8 (T unchanged)."""

    def __init__(self, channels: Sequence[int], bn: Norm) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"R3D18Encoder needs 4 channel counts, got {list(channels)}")
        self.stem = nn.Sequential(
            Conv3d(3, channels[0], kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            norm_layer_3d(bn)(channels[0]),
            nn.ReLU(inplace=True),
        )
        spatial_strides = (1, 2, 2, 1)
        inplanes = channels[0]
        for index, (planes, spatial_stride) in enumerate(zip(channels, spatial_strides), start=1):
            stride = (1, spatial_stride, spatial_stride)
            layer = nn.Sequential(BasicBlock(inplanes, planes, stride, bn), BasicBlock(planes, planes, (1, 1, 1), bn))
            setattr(self, f"layer{index}", layer)
            inplanes = planes

        # torchvision's VideoResNet initialisation, kept by the original (it matters when training from scratch).
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        x0 = self.stem(x)
        x1 = self.layer1(x0)
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        return x0, x1, x2, x3, x4
