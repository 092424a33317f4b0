"""Side-by-side comparison image of one interpolated frame, for judging interpolation by eye (``--save_grid``).

Five panels in a row, each the size of a frame: the two centre inputs I1 and I2, the output, the ground truth,
and a heat map of the output's error. Frames are rounded to 8 bits first, like the saved outputs and the metrics.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from common.files import PathType
from metrics import quantize
from common.safe_write import atomic_save_image

PANEL_LABELS = ("I1", "I2", "output", "ground truth")
# The heat map saturates at a mean absolute error of a quarter of the range (64 of 255 levels), a fixed scale so
# that maps of different items and methods compare.
ERROR_FULL_SCALE = 0.25
# Anchor colours of matplotlib's "inferno" colour map at 0, 1/4, 1/2, 3/4, 1 (perceptually ordered, dark = exact).
HEAT_COLOURS = (
    (0, 0, 4),
    (87, 16, 110),
    (188, 55, 84),
    (249, 142, 9),
    (252, 255, 164),
)


def heat_map(values: Tensor) -> Tensor:
    """(H, W) values in [0, 1] -> (3, H, W) colours in [0, 1], linear between the ``HEAT_COLOURS`` anchors.

    NaN (the error of a non-finite output) shows as full scale."""
    anchors = torch.tensor(HEAT_COLOURS, dtype=values.dtype, device=values.device) / 255  # (K, 3)
    position = torch.nan_to_num(values, nan=1.0).clamp(0, 1) * (len(HEAT_COLOURS) - 1)
    lower = position.floor().long().clamp(max=len(HEAT_COLOURS) - 2)
    fraction = (position - lower).unsqueeze(-1)
    colours = anchors[lower] * (1 - fraction) + anchors[lower + 1] * fraction  # (H, W, 3)
    return colours.permute(2, 0, 1)


def comparison_grid(input1: Tensor, input2: Tensor, output: Tensor, target: Tensor) -> Tensor:
    """The five panels side by side, (3, H, 5W) in [0, 1]; each argument is a (3, H, W) frame in [0, 1]."""
    frames = [input1, input2, output, target]
    if any(frame.dim() != 3 or frame.shape != target.shape or frame.shape[0] != 3 for frame in frames):
        raise ValueError(f"expected four (3, H, W) frames of one shape, got {[tuple(f.shape) for f in frames]}")
    rounded = [quantize(frame) / 255 for frame in frames]
    error = (rounded[2] - rounded[3]).abs().mean(dim=0) / ERROR_FULL_SCALE
    panels = [torch.nan_to_num(panel, nan=0.0) for panel in rounded]  # a NaN pixel shows black, its error full scale
    return torch.cat([*panels, heat_map(error)], dim=-1)


def save_comparison_grid(
    path: PathType,
    input1: Tensor,
    input2: Tensor,
    output: Tensor,
    target: Tensor,
    output_note: Optional[str] = None,
) -> None:
    """Write :func:`comparison_grid` as a PNG (atomically) with a label in each panel; ``output_note`` (e.g.
    "28.31 dB") is appended to the output's label."""
    grid = comparison_grid(input1, input2, output, target)
    pixels = grid.mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    image = Image.fromarray(np.ascontiguousarray(pixels))
    width = target.shape[-1]
    labels = list(PANEL_LABELS)
    if output_note:
        labels[2] = f"output {output_note}"
    labels.append(f"|error|, full scale {ERROR_FULL_SCALE:.0%}")
    draw = ImageDraw.Draw(image)
    for panel, label in enumerate(labels):
        x, y = panel * width + 4, 4
        left, top, right, bottom = draw.textbbox((x, y), label)
        draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=(0, 0, 0))
        draw.text((x, y), label, fill=(255, 255, 255))
    atomic_save_image(image, path)
