"""Training augmentations of the original (``data/vfitransforms.py``): random crop, flips and time reversal.

All frames of one sample get the same crop and the same flips. The original drew, in order, a crop
position, a horizontal flip (p = 0.5), a vertical flip (p = 0.5) and, separately, a time reversal
(p = 0.5). Here every draw comes from a ``torch.Generator`` (or torch's global RNG when none is given),
and all five parameters are always drawn, so switching one augmentation off leaves the others' draws
for a given seed unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch import Tensor


class AugmentationDraw(NamedTuple):
    """The random parameters of one sample: crop corner and which transforms apply."""

    top: int
    left: int
    hflip: bool
    vflip: bool
    reverse: bool


def item_generator(seed: Optional[int], index: int) -> Optional[torch.Generator]:
    """A generator that depends only on (seed, index), or None (torch's global RNG) when seed is None.

    Seeding per item makes an item's randomness independent of call order and of DataLoader workers.
    """
    if seed is None:
        return None
    mixed_seed = int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator().manual_seed(mixed_seed)


def _coin(probability: float, generator: Optional[torch.Generator]) -> bool:
    return bool(torch.rand((), generator=generator) < probability)


@dataclass(frozen=True)
class Augmentation:
    """Which augmentations a training set applies.

    crop_size: (height, width) of the random crop, or None for no crop.
    hflip, vflip: random horizontal / vertical flip with probability ``p`` (the original's ``augment_s``
        turns on both).
    reverse: random reversal of the frame order with probability ``p`` (the original's ``augment_t``);
        the target stays in the middle.
    """

    crop_size: Optional[tuple[int, int]] = (256, 256)
    hflip: bool = True
    vflip: bool = True
    reverse: bool = True
    p: float = 0.5

    @classmethod
    def from_flags(
        cls, crop_size: Optional[Sequence[int]], augment_s: bool, augment_t: bool
    ) -> "Augmentation":
        """The augmentation selected by the original constructor arguments crop_sz, augment_s, augment_t."""
        crop = None if crop_size is None else (int(crop_size[0]), int(crop_size[1]))
        return cls(crop_size=crop, hflip=augment_s, vflip=augment_s, reverse=augment_t)

    def draw(self, height: int, width: int, generator: Optional[torch.Generator] = None) -> AugmentationDraw:
        """Draw the parameters for frames of size height x width (crop position as in RandomCrop.get_params)."""
        top = left = 0
        if self.crop_size is not None:
            crop_height, crop_width = self.crop_size
            if crop_height > height or crop_width > width:
                raise ValueError(f"crop size {crop_height}x{crop_width} is larger than the frames {height}x{width}")
            top = int(torch.randint(0, height - crop_height + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - crop_width + 1, (1,), generator=generator))
        hflip = _coin(self.p, generator)
        vflip = _coin(self.p, generator)
        reverse = _coin(self.p, generator)
        return AugmentationDraw(top, left, hflip and self.hflip, vflip and self.vflip, reverse and self.reverse)

    def apply(self, frames: Sequence[Tensor], draw: AugmentationDraw) -> list[Tensor]:
        """Crop, flip and reorder (3, H, W) frames by ``draw``."""
        out = list(frames)
        if self.crop_size is not None:
            crop_height, crop_width = self.crop_size
            out = [f[..., draw.top:draw.top + crop_height, draw.left:draw.left + crop_width] for f in out]
        if draw.hflip:
            out = [f.flip(-1) for f in out]
        if draw.vflip:
            out = [f.flip(-2) for f in out]
        if draw.reverse:
            out = out[::-1]
        return [f.contiguous() for f in out]

    def __call__(self, frames: Sequence[Tensor], generator: Optional[torch.Generator] = None) -> list[Tensor]:
        """Draw parameters for ``frames`` (all the same size) and apply them."""
        height, width = frames[0].shape[-2:]
        return self.apply(frames, self.draw(height, width, generator))


NO_AUGMENTATION = Augmentation(crop_size=None, hflip=False, vflip=False, reverse=False)
