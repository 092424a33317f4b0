"""Laplacian-pyramid L1 loss (the `Lap` term, the default training loss of ST-MFNet).

Pyramid after Burt & Adelson, "The Laplacian pyramid as a compact image code" (1983):
each level is the image minus the expansion of its blurred, 2x average-pooled version;
the last level is the low-pass residual. The loss sums the L1 distances of the levels,
level i (0 = finest) weighted by 2**i.

Input sizes: like the original, the pyramid is only defined when height and width are
multiples of 16 (four halvings) and at least 32 (the 5x5 reflect-padded blur needs at
least 3 pixels at 1/8 scale). Other sizes raise ValueError instead of being padded,
because padding would change the value of the loss; training crops (256) qualify.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

NUM_LEVELS = 5
_SIZE_MULTIPLE = 2 ** (NUM_LEVELS - 1)
_MIN_SIZE = 2 * _SIZE_MULTIPLE


def binomial_kernel(channels: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The 5x5 binomial kernel outer([1,4,6,4,1])/256 as a depthwise (channels,1,5,5) filter."""
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=dtype, device=device)
    kernel = torch.outer(taps, taps) / 256
    return kernel.expand(channels, 1, 5, 5)


def _blur(x: Tensor, kernel: Tensor) -> Tensor:
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def _expand(x: Tensor, kernel: Tensor) -> Tensor:
    """Double the size by inserting zero rows/columns, then blur with 4x the kernel."""
    batch, channels, height, width = x.shape
    upsampled = x.new_zeros(batch, channels, 2 * height, 2 * width)
    upsampled[:, :, ::2, ::2] = x
    # x4 restores the mean brightness lost to the three inserted zeros per 2x2 block.
    return _blur(upsampled, 4 * kernel)


def laplacian_pyramid(x: Tensor, num_levels: int = NUM_LEVELS) -> list[Tensor]:
    """Band-pass levels, finest first, followed by the low-pass residual (`num_levels` tensors)."""
    kernel = binomial_kernel(x.shape[1], x.dtype, x.device)
    levels = []
    current = x
    for _ in range(num_levels - 1):
        reduced = F.avg_pool2d(_blur(current, kernel), 2)
        levels.append(current - _expand(reduced, kernel))
        current = reduced
    levels.append(current)
    return levels


class LaplacianLoss(nn.Module):
    """sum_i 2**i * sum|L_i(output) - L_i(gt)| over a 5-level Laplacian pyramid (summed, not averaged)."""

    def forward(self, output: Tensor, gt: Tensor) -> Tensor:
        if output.shape != gt.shape or output.dim() != 4:
            raise ValueError(
                f"LaplacianLoss expects two (B, C, H, W) tensors of the same shape, "
                f"got {tuple(output.shape)} and {tuple(gt.shape)}"
            )
        height, width = output.shape[-2:]
        if height % _SIZE_MULTIPLE or width % _SIZE_MULTIPLE or min(height, width) < _MIN_SIZE:
            raise ValueError(
                f"LaplacianLoss needs height and width that are multiples of {_SIZE_MULTIPLE} "
                f"and at least {_MIN_SIZE}, got {height}x{width}"
            )
        return sum(
            2**level * (a - b).abs().sum()
            for level, (a, b) in enumerate(zip(laplacian_pyramid(output), laplacian_pyramid(gt)))
        )
