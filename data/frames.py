"""Reading frames from image files, the one reader every script uses, and the centre crop used by the test sets.

Whatever the PNG/JPEG holds (8-bit RGB, greyscale, palette, RGBA, 16-bit greyscale or 16-bit RGB), a frame comes
out as 8-bit RGB: 16-bit greyscale is rounded to 8 bits (a plain ``convert("RGB")`` would clip it, turning most
pixels white), 16-bit RGB keeps Pillow's high byte (within one level of rounding), alpha is dropped and palette
and grey images are expanded to RGB.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from common.files import PathType


# Pillow's modes for 16-bit greyscale PNGs ("I" in older versions).
SIXTEEN_BIT_GREY_MODES = ("I;16", "I;16B", "I;16L", "I")


def read_image_rgb(path: PathType) -> np.ndarray:
    """The image file at ``path`` as a writable (H, W, 3) uint8 RGB array (see the module docstring for the modes).

    A missing file raises ``FileNotFoundError``; a file that is not a readable image (truncated, empty, another
    format) raises ``ValueError`` naming it.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"frame {path} not found")
    try:
        with Image.open(path) as image:
            if image.mode in SIXTEEN_BIT_GREY_MODES:
                grey = np.asarray(image, dtype=np.float64)
                grey8 = np.clip(np.rint(grey / 257.0), 0, 255).astype(np.uint8)
                return np.repeat(grey8[..., None], 3, axis=-1)
            return np.array(image.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as error:  # Pillow reports damaged files with all three
        raise ValueError(f"cannot read {path} as an image: {error}") from error


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
