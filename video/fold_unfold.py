"""The original ``utility.FoldUnfold``: cut frames into overlapping square patches and put patches back together.

Kept with its original geometry and uniform averaging for scripts written against it; ``interpolate.py --tile``
uses ``video/tiling.py`` instead, whose cosine cross-fades leave no seams at the patch edges.

Geometry (all sizes even): stride ``s = patch_size - overlap``; ``n = size // s + 1`` patches per side; the frame is
reflect-padded by ``(s * n + overlap - size) // 2`` on both ends of each side and unfolded with that stride.
``unfold_to_frame`` folds the patches back, divides every pixel by the number of patches covering it and crops the
padding away.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

CHANNELS = 3


class FoldUnfold:
    """Patches of (1, 3, H, W) frames and back: ``FoldUnfold(height, width, patch_size, overlap)``.

    Odd sizes raise ValueError (the original printed a warning and returned an unusable object). Where the padding
    is zero the crop keeps the whole frame (the original's ``[pad:-pad]`` crop returned an empty tensor there).
    """

    def __init__(self, height: int, width: int, patch_size: int, overlap: int) -> None:
        if height % 2 or width % 2 or patch_size % 2 or overlap % 2:
            raise ValueError(
                f"FoldUnfold needs even height, width, patch_size and overlap, got {height}, {width}, "
                f"{patch_size}, {overlap}"
            )
        if not 0 <= overlap < patch_size:
            raise ValueError(f"FoldUnfold: overlap {overlap} must be at least 0 and less than patch_size {patch_size}")
        self.height = height
        self.width = width
        self.patch_size = patch_size
        self.overlap = overlap
        self.stride = patch_size - overlap
        self.pad_h = self._padding(height)
        self.pad_w = self._padding(width)
        self.height_pad = height + 2 * self.pad_h
        self.width_pad = width + 2 * self.pad_w

    def _padding(self, size: int) -> int:
        patches = size // self.stride + 1
        return (self.stride * patches + self.overlap - size) // 2

    def fold_to_patches(self, *frames: Tensor) -> list[Tensor]:
        """Each (1, 3, H, W) frame as a (num_patches, 3, patch_size, patch_size) batch, row by row."""
        patch_batches = []
        for frame in frames:
            padded = F.pad(frame, (self.pad_w, self.pad_w, self.pad_h, self.pad_h), mode="reflect")
            columns = F.unfold(padded, self.patch_size, stride=self.stride)  # (1, 3 * p * p, num_patches)
            patch_batches.append(columns.permute(2, 1, 0).reshape(-1, CHANNELS, self.patch_size, self.patch_size))
        return patch_batches

    def unfold_to_frame(self, patches: Tensor) -> Tensor:
        """(num_patches, 3, patch_size, patch_size) patches -> the (1, 3, H, W) frame, overlaps averaged."""
        columns = patches.reshape(-1, CHANNELS * self.patch_size**2, 1).permute(2, 1, 0)
        padded_size = (self.height_pad, self.width_pad)
        summed = F.fold(columns, padded_size, self.patch_size, stride=self.stride)
        coverage = F.fold(
            F.unfold(summed.new_ones(summed.shape), self.patch_size, stride=self.stride),
            padded_size, self.patch_size, stride=self.stride,
        )
        frame = summed / coverage
        return frame[:, :, self.pad_h : self.pad_h + self.height, self.pad_w : self.pad_w + self.width].clone()
