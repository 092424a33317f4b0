"""Reading one image file as 8-bit RGB, the one image reader of the data sets and of frame-folder inputs.

Whatever the PNG/JPEG holds (8-bit RGB, greyscale, palette, RGBA, 16-bit greyscale or 16-bit RGB), a frame comes
out as 8-bit RGB: 16-bit greyscale is rounded to 8 bits (a plain ``convert("RGB")`` would clip it, turning most
pixels white), 16-bit RGB keeps Pillow's high byte (within one level of rounding), alpha is dropped and palette
and grey images are expanded to RGB. (``video/readers.py`` reads 16-bit RGB frame folders at full depth.)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

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
