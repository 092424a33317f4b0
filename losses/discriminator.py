"""Discriminators of the adversarial loss terms (losses/adversarial.py).

All five share one design, from the original's `losses/discriminator.py`: a tower of eight
3x3 conv blocks (conv, optional batch norm, LeakyReLU 0.2) that halves the resolution four
times and doubles the width three times, then a two-layer classifier on the flattened
features giving one logit per sample. Because the classifier is fully connected, a
discriminator only accepts square inputs of the training crop size it was built for
(`patch_size`, a multiple of 16).

    Discriminator          one frame                      GAN, WGAN, WGAN_GP (no batch norm)
    TemporalDiscriminator  (prev, middle, next) via 3D    T_WGAN_GP
    FIDiscriminator        two frames, channel-stacked    FI_GAN
    FICondDiscriminator    (prev, middle, next) via 3D    FI_Cond_GAN
    STDiscriminator        middle frame + its differences STGAN
                           to prev and next

Attribute names (`features`, `feature_3d`, `s_features`, `t_features`, `classifier`) and
their nesting are the original's.
"""
import torch
from torch import Tensor, nn

TOWER_DEPTH = 7  # blocks after the first: strides 2,1,2,1,2,1,2 -> 1/16 resolution, widths x8
DOWNSCALE = 2 ** ((TOWER_DEPTH + 1) // 2)
WIDTH_GROWTH = 2 ** (TOWER_DEPTH // 2)
HIDDEN_FEATURES = 1024


class BasicBlock(nn.Sequential):
    """Bias-free 3x3 conv (stride 1 or 2), optional batch norm, LeakyReLU(0.2)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, batch_norm: bool) -> None:
        layers = [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.LeakyReLU(negative_slope=0.2, inplace=True))
        super().__init__(*layers)


def feature_tower(in_channels: int, width: int, batch_norm: bool) -> nn.Sequential:
    """The conv tower: (B, in_channels, P, P) -> (B, width * 8, P / 16, P / 16)."""
    blocks = [BasicBlock(in_channels, width, 1, batch_norm)]
    for index in range(TOWER_DEPTH):
        # Even blocks halve the resolution, odd blocks double the width.
        stride, out_width = (2, width) if index % 2 == 0 else (1, width * 2)
        blocks.append(BasicBlock(width, out_width, stride, batch_norm))
        width = out_width
    return nn.Sequential(*blocks)


def classifier(feature_channels: int, patch_size: int) -> nn.Sequential:
    """Flattened (feature_channels, P/16, P/16) features -> one logit."""
    side = patch_size // DOWNSCALE
    return nn.Sequential(
        nn.Linear(feature_channels * side * side, HIDDEN_FEATURES),
        nn.LeakyReLU(negative_slope=0.2, inplace=True),
        nn.Linear(HIDDEN_FEATURES, 1),
    )


def temporal_fusion(width: int) -> nn.Sequential:
    """Two 2x3x3 Conv3d without padding in time: 3 frames (B, 3, 3, H, W) -> (B, width, 1, H, W).

    The original puts no activation between the two convolutions.
    """
    return nn.Sequential(
        nn.Conv3d(3, width, kernel_size=(2, 3, 3), padding=(0, 1, 1)),
        nn.Conv3d(width, width, kernel_size=(2, 3, 3), padding=(0, 1, 1)),
    )


def _check_patch_size(patch_size: int) -> None:
    if patch_size < DOWNSCALE or patch_size % DOWNSCALE:
        raise ValueError(f"discriminator patch_size must be a positive multiple of {DOWNSCALE}, got {patch_size}")


def _check_frames(frames: tuple[Tensor, ...], patch_size: int) -> None:
    for frame in frames:
        if frame.dim() != 4 or frame.shape[1] != 3 or tuple(frame.shape[-2:]) != (patch_size, patch_size):
            shapes = ", ".join(str(tuple(f.shape)) for f in frames)
            raise ValueError(
                f"discriminator built for (B, 3, {patch_size}, {patch_size}) frames (patch_size "
                f"{patch_size}, its classifier is fully connected) got {shapes}"
            )


def _stack_in_time(previous: Tensor, middle: Tensor, following: Tensor) -> Tensor:
    return torch.stack((previous, middle, following), dim=2)  # (B, 3, T=3, H, W)


class _PatchDiscriminator(nn.Module):
    """Common checks and classification of the flattened tower features."""

    def __init__(self, patch_size: int) -> None:
        super().__init__()
        _check_patch_size(patch_size)
        self.patch_size = patch_size

    def _classify(self, features: Tensor) -> Tensor:
        return self.classifier(features.flatten(1))


class Discriminator(_PatchDiscriminator):
    """Single-frame discriminator of GAN, WGAN and WGAN_GP (which drops batch norm)."""

    def __init__(self, patch_size: int, batch_norm: bool = True) -> None:
        super().__init__(patch_size)
        self.features = feature_tower(3, 64, batch_norm)
        self.classifier = classifier(64 * WIDTH_GROWTH, patch_size)

    def forward(self, frame: Tensor) -> Tensor:
        _check_frames((frame,), self.patch_size)
        return self._classify(self.features(frame))


class TemporalDiscriminator(_PatchDiscriminator):
    """Triplet discriminator of T_WGAN_GP: 3D fusion to 64 channels, tower without batch norm."""

    def __init__(self, patch_size: int) -> None:
        super().__init__(patch_size)
        self.feature_3d = temporal_fusion(64)
        self.features = feature_tower(64, 64, batch_norm=False)
        self.classifier = classifier(64 * WIDTH_GROWTH, patch_size)

    def forward(self, previous: Tensor, middle: Tensor, following: Tensor) -> Tensor:
        _check_frames((previous, middle, following), self.patch_size)
        # squeeze(2) drops only the time axis; the original's bare squeeze() also dropped a batch of 1.
        fused = self.feature_3d(_stack_in_time(previous, middle, following)).squeeze(2)
        return self._classify(self.features(fused))


class FIDiscriminator(_PatchDiscriminator):
    """Pair discriminator of FI_GAN: two frames stacked on channels (6 in)."""

    def __init__(self, patch_size: int) -> None:
        super().__init__(patch_size)
        self.features = feature_tower(6, 64, batch_norm=True)
        self.classifier = classifier(64 * WIDTH_GROWTH, patch_size)

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        _check_frames((first, second), self.patch_size)
        return self._classify(self.features(torch.cat((first, second), dim=1)))


class FICondDiscriminator(_PatchDiscriminator):
    """Triplet discriminator of FI_Cond_GAN: 3D fusion to 8 channels, narrow tower with batch norm."""

    def __init__(self, patch_size: int) -> None:
        super().__init__(patch_size)
        self.feature_3d = temporal_fusion(8)
        self.features = feature_tower(8, 8, batch_norm=True)
        self.classifier = classifier(8 * WIDTH_GROWTH, patch_size)

    def forward(self, previous: Tensor, middle: Tensor, following: Tensor) -> Tensor:
        _check_frames((previous, middle, following), self.patch_size)
        fused = self.feature_3d(_stack_in_time(previous, middle, following)).squeeze(2)
        return self._classify(self.features(fused))


class STDiscriminator(_PatchDiscriminator):
    """Spatio-temporal discriminator of STGAN.

    A spatial tower sees the middle frame, a temporal tower its differences to the
    previous and next frames; the classifier sees both flattened feature maps.
    """

    def __init__(self, patch_size: int) -> None:
        super().__init__(patch_size)
        self.s_features = feature_tower(3, 8, batch_norm=True)
        self.t_features = feature_tower(6, 8, batch_norm=True)
        self.classifier = classifier(2 * 8 * WIDTH_GROWTH, patch_size)

    def forward(self, previous: Tensor, middle: Tensor, following: Tensor) -> Tensor:
        _check_frames((previous, middle, following), self.patch_size)
        spatial = self.s_features(middle).flatten(1)
        temporal = self.t_features(torch.cat((middle - previous, middle - following), dim=1)).flatten(1)
        return self.classifier(torch.cat((spatial, temporal), dim=1))
