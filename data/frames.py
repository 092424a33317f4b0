"""Reading frames from image files as float tensors, and the centre crop used by the test sets."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from common.files import PathType


def image_to_tensor(image: Image.Image) -> Tensor:
    """A PIL image as a (3, H, W) float32 RGB tensor in [0, 1] (what torchvision's to_tensor gives for 8-bit RGB)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(255)


def load_frame(path: PathType) -> Tensor:
    """The image file at ``path`` as a (3, H, W) float32 RGB tensor in [0, 1]."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"frame {path} not found")
    with Image.open(path) as image:
        return image_to_tensor(image)


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
