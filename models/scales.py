"""Frame preprocessing and the three input scales of ST-MFNet's multi-scale AdaCoF branch.

ST-MFNet (Danier et al., CVPR 2022, Sec. 3.1) warps each frame at 1/2, 1 and 2x resolution: the 1/2 scale
is a 5x5 Gaussian blur (sigma 0.5) plus bilinear downsampling, the 2x scale an 8-tap interpolation filter.
Frames are first padded to a multiple of 128 so that every level of the feature U-Net and the GridNet halves
evenly, and the feature extractor sees mean-subtracted frames.

Everything here follows the dtype and device of its input (the original built its constants and the upsampled
frame in the default dtype, which silently rounds a float64 model to float32).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Per-channel RGB means subtracted before the feature extractor (values of the original code).
RGB_MEAN = (0.4631, 0.4352, 0.3990)
# Half-pel interpolation filter of the 2x branch; its taps sit at -3.5 ... +3.5 pixels around the new sample.
EIGHT_TAP_FILTER = (-1.0, 4.0, -11.0, 40.0, 40.0, -11.0, 4.0, -1.0)
EIGHT_TAP_DIVISOR = 64.0


def gaussian_kernel(
    size: int, sigma: float, dtype: Optional[torch.dtype] = None, device: Optional[torch.device] = None
) -> Tensor:
    """Normalised 2D Gaussian kernel (size, size); ``dtype=None`` means the default dtype, like torch factories."""
    taps = torch.arange(-(size - 1) / 2, (size + 1) / 2, dtype=dtype, device=device)
    taps = torch.exp(-1.0 / (2 * sigma**2) * taps**2)
    kernel = taps.reshape(-1, 1) * taps.reshape(1, -1)
    return kernel / kernel.sum()


def normalize_frame(frame: Tensor) -> Tensor:
    """Subtract the RGB mean from a (B, 3, H, W) frame (the original ``moduleNormalize``)."""
    mean = torch.tensor(RGB_MEAN, dtype=frame.dtype, device=frame.device).view(1, 3, 1, 1)
    return frame - mean


def _mirror_indices(length: int, padded_length: int, device: torch.device) -> Tensor:
    """Source index of each of ``padded_length`` positions when a side of ``length`` is mirror-extended at its end.

    numpy's ``reflect`` extension: the sequence 0, 1, ..., n-1, n-2, ..., 1, 0, 1, ... with period 2(n-1), which is
    what reflecting again and again gives; a side of one pixel is its own mirror image. Written with tensor
    arithmetic on the (possibly symbolic) sizes, so that an exported graph pads any frame size.
    """
    positions = torch.arange(padded_length, device=device)
    period = torch.clamp(2 * (torch.tensor(length, device=device) - 1), min=1)
    phase = torch.remainder(positions, period)
    return torch.where(phase < length, phase, period - phase)


def pad_to_multiple(frame: Tensor, multiple: int = 128) -> Tensor:
    """Reflect-pad a (B, C, H, W) frame at the bottom and right so that H and W are multiples of ``multiple``.

    The original used ``F.pad(mode="reflect")``, which needs pads smaller than the side (and so crashed for sides of
    64 pixels or less when padding to 128). Mirroring again and again (``_mirror_indices``) gives the same values
    whenever one reflection is valid, and a mirrored continuation of the image otherwise.
    """
    height, width = frame.shape[-2:]
    rows = _mirror_indices(height, height + (-height % multiple), frame.device)
    columns = _mirror_indices(width, width + (-width % multiple), frame.device)
    return frame.index_select(-2, rows).index_select(-1, columns)


def downsample_half(frame: Tensor, gauss_kernel: Tensor) -> Tensor:
    """1/2 scale: blur with ``gauss_kernel`` (C, 1, k, k; reflect padding), then bilinear resize to (H//2, W//2)."""
    channels, height, width = frame.shape[1:]
    radius = (gauss_kernel.shape[-1] - 1) // 2
    blurred = F.conv2d(F.pad(frame, (radius,) * 4, mode="reflect"), gauss_kernel, groups=channels)
    return F.interpolate(blurred, size=(height // 2, width // 2), mode="bilinear", align_corners=False)


class Upsampler_8tap(nn.Module):
    """2x upsampling with a separable 8-tap half-pel filter (the 2x branch of ST-MFNet).

    Even rows and columns keep the input samples; new samples in between come from the filter applied
    horizontally, vertically, and (at odd row and column) horizontally to the vertically interpolated rows.
    ``filter`` is a frozen ``nn.Parameter`` (not a buffer), as in the published checkpoints.
    """

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        taps = torch.tensor([EIGHT_TAP_FILTER], dtype=torch.float64) / EIGHT_TAP_DIVISOR
        self.filter = nn.Parameter(
            taps.to(torch.get_default_dtype()).repeat(channels, 1, 1, 1), requires_grad=False
        )

    def _between_columns(self, frame: Tensor) -> Tensor:
        # 3 taps left and 4 right of each sample give the value half a pixel to its right.
        padded = F.pad(frame, (3, 4, 0, 0), mode="reflect")
        return F.conv2d(padded, self.filter, groups=self.filter.shape[0])

    def forward(self, frame: Tensor) -> Tensor:
        between_rows = self._between_columns(frame.transpose(2, 3)).transpose(2, 3)
        even_rows = torch.stack([frame, self._between_columns(frame)], dim=-1).flatten(-2)
        odd_rows = torch.stack([between_rows, self._between_columns(between_rows)], dim=-1).flatten(-2)
        return torch.stack([even_rows, odd_rows], dim=-2).flatten(-3, -2)  # (B, C, 2H, 2W)
