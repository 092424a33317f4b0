"""Raw planar YUV files: the frame layout, the format read from a file name, and conversion to RGB.

The teacher's ``interpolate_yuv.py`` read planar Y, U, V frames (8-bit samples as bytes, 10- and 16-bit samples as
little-endian 16-bit words), took the bit depth and chroma format from the file name (``10bit``, ``16bit``,
``444``; 8-bit 4:2:0 otherwise) and the size from ``--size`` (default 1920x1080). We keep that and also read the
size and frame rate from names such as ``Seq_1920x1080_60fps_10bit_420.yuv`` when they are not given.

Conversion uses limited-range (studio swing) BT.601 by default, what OpenCV's ``COLOR_YUV2RGB_I420`` (used by the
original for 4:2:0) does; the original converted 4:4:4 with OpenCV's full-range ``YCrCb`` formula instead, a quirk
we drop so that both chroma formats decode alike. High bit depths are scaled by ``2 ** (bit_depth - 8)`` (the
standard limited-range mapping) rather than the original's ``/ (2 ** bit_depth - 1) * 255`` with truncation.
Chroma of 4:2:0 is upsampled by repeating each sample over its 2x2 block, as OpenCV does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Optional

import numpy as np

from video.colour import MATRIX_BT601, MATRIX_BT709, MATRIX_BT2020, Colour, ycbcr_to_rgb

CHROMA_FORMATS = ("420", "444")
BIT_DEPTHS = (8, 10, 16)
# The original script's --size default.
DEFAULT_SIZE = (1920, 1080)
# --yuv_matrix names and their H.273 matrix code points (video/colour.py).
MATRICES = {"bt601": MATRIX_BT601, "bt709": MATRIX_BT709, "bt2020": MATRIX_BT2020}

_SIZE_IN_NAME = re.compile(r"(\d+)x(\d+)")
_FPS_IN_NAME = re.compile(r"(\d+(?:\.\d+)?)fps")


@dataclass(frozen=True)
class YUVFormat:
    """Size, chroma format (``"420"`` or ``"444"``) and bit depth of the frames of a raw YUV file."""

    width: int
    height: int
    chroma: str = "420"
    bit_depth: int = 8

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"YUV frame size must be positive, got {self.width}x{self.height}")
        if self.chroma not in CHROMA_FORMATS:
            raise ValueError(f"YUV chroma format must be one of {CHROMA_FORMATS}, got {self.chroma!r}")
        if self.bit_depth not in BIT_DEPTHS:
            raise ValueError(f"YUV bit depth must be one of {BIT_DEPTHS}, got {self.bit_depth}")

    @property
    def chroma_size(self) -> tuple[int, int]:
        """(width, height) of each chroma plane; odd 4:2:0 sizes round up, as FFmpeg lays them out."""
        if self.chroma == "444":
            return self.width, self.height
        return (self.width + 1) // 2, (self.height + 1) // 2

    @property
    def sample_dtype(self) -> np.dtype:
        return np.dtype(np.uint8) if self.bit_depth == 8 else np.dtype("<u2")

    @property
    def bytes_per_frame(self) -> int:
        chroma_width, chroma_height = self.chroma_size
        samples = self.width * self.height + 2 * chroma_width * chroma_height
        return samples * self.sample_dtype.itemsize

    @property
    def pix_fmt(self) -> str:
        """FFmpeg's name of this layout, e.g. ``yuv420p10le``."""
        return f"yuv{self.chroma}p" + ("" if self.bit_depth == 8 else f"{self.bit_depth}le")

    def __str__(self) -> str:
        return f"{self.width}x{self.height} {self.chroma} {self.bit_depth}-bit"


def parse_width_height(text: str) -> tuple[int, int]:
    """``"WxH"`` as (width, height)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"invalid size {text!r}, expected '<width>x<height>', e.g. 1920x1080")
    return int(match.group(1)), int(match.group(2))


def format_from_name(
    path: str | Path,
    size: Optional[str] = None,
    chroma: Optional[str] = None,
    bit_depth: Optional[int] = None,
) -> YUVFormat:
    """The file's format: explicit arguments win, then the file name's hints, then 1920x1080 8-bit 4:2:0."""
    name = Path(path).name
    if size is not None:
        width, height = parse_width_height(size)
    else:
        match = _SIZE_IN_NAME.search(name)
        width, height = (int(match.group(1)), int(match.group(2))) if match else DEFAULT_SIZE
    if chroma is None:
        chroma = "444" if "444" in name else "420"
    if bit_depth is None:
        bit_depth = 16 if "16bit" in name else 10 if "10bit" in name else 8
    return YUVFormat(width, height, str(chroma), int(bit_depth))


def frame_rate_from_name(path: str | Path) -> Optional[Fraction]:
    """The rate in a name such as ``Seq_1920x1080_60fps.yuv``, or None."""
    match = _FPS_IN_NAME.search(Path(path).name)
    return Fraction(match.group(1)) if match else None


def split_planes(buffer: bytes, layout: YUVFormat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame's bytes as the Y, U and V planes, (H, W) and twice (chroma height, chroma width)."""
    if len(buffer) != layout.bytes_per_frame:
        raise ValueError(f"a {layout} frame has {layout.bytes_per_frame} bytes, got {len(buffer)}")
    samples = np.frombuffer(buffer, dtype=layout.sample_dtype)
    chroma_width, chroma_height = layout.chroma_size
    luma_count = layout.width * layout.height
    chroma_count = chroma_width * chroma_height
    luma = samples[:luma_count].reshape(layout.height, layout.width)
    cb = samples[luma_count : luma_count + chroma_count].reshape(chroma_height, chroma_width)
    cr = samples[luma_count + chroma_count :].reshape(chroma_height, chroma_width)
    return luma, cb, cr


def yuv_to_rgb(
    luma: np.ndarray, cb: np.ndarray, cr: np.ndarray, bit_depth: int = 8, matrix: str = "bt601"
) -> np.ndarray:
    """Limited-range planes of any supported bit depth as an (H, W, 3) uint8 RGB image (rounded, clipped)."""
    if matrix not in MATRICES:
        raise ValueError(f"unknown colour matrix {matrix!r}; valid: {sorted(MATRICES)}")
    rgb = ycbcr_to_rgb(luma, cb, cr, bit_depth, Colour(MATRICES[matrix], full_range=False))
    return np.rint(rgb * 255.0).astype(np.uint8)
