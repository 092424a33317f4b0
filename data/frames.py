"""Frames of the data sets as tensors (read by ``video/images.py``), and the centre crop used by the test sets."""
from __future__ import annotations

import re

import torch
from torch import Tensor

from common.files import PathType
from video.images import read_image_rgb


def load_frame(path: PathType) -> Tensor:
    """The image file at ``path`` as a (3, H, W) float32 RGB tensor in [0, 1] (torchvision's to_tensor for 8-bit)."""
    return torch.from_numpy(read_image_rgb(path)).permute(2, 0, 1).float().div_(255)


def center_crop(frame: Tensor, height: int, width: int) -> Tensor:
    """The central height x width window of a (..., H, W) frame.

    The offsets round like torchvision's ``center_crop`` (round half to even of (H - height) / 2),
    which the original applied to the 4K VFITex frames.
    """
    frame_height, frame_width = frame.shape[-2:]
    if height > frame_height or width > frame_width:
        raise ValueError(f"centre crop {height}x{width} is larger than the frame {frame_height}x{frame_width}")
    top = int(round((frame_height - height) / 2.0))
    left = int(round((frame_width - width) / 2.0))
    return frame[..., top:top + height, left:left + width]


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: "2" < "10", "seq2" < "seq10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
