"""The colour description of a video and the conversion between its Y'CbCr samples and RGB in [0, 1].

A stream's tags (ITU-T H.273 code points, as FFmpeg numbers them) say how its samples map to colour: the matrix
(BT.601, BT.709, BT.2020 non-constant luminance, ...) and the range (limited: luma 16..235 and chroma 16..240 in
8-bit units, scaled by ``2 ** (bit_depth - 8)``; full: 0..2^n - 1) decide the conversion to RGB; the primaries
and the transfer characteristic (BT.709, PQ = 16, HLG = 18, ...) only describe what the RGB values mean and are
carried to the output unchanged. RGB stays in the coded (non-linear) domain: for PQ and HLG the network sees the
coded values, not linear light. An untagged matrix is guessed from the frame size as players do (BT.709 from
1280 wide or 577 lines up, BT.601 below; BT.2020 when the primaries say BT.2020), an untagged range from the pixel
format (``yuvj*`` is full range, anything else limited).

Chroma is upsampled by repeating each sample over the luma samples it covers and downsampled by averaging them,
so a frame whose chroma is constant over each block converts back to the same chroma samples.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np

UNSPECIFIED, RESERVED = 2, 3  # code points of primaries, transfer and matrix that say nothing
RANGE_LIMITED, RANGE_FULL = 1, 2
PRIMARIES_BT2020 = 9
# Matrix code point -> (name, luma weights Kr, Kb).
MATRICES = {
    1: ("BT.709", 0.2126, 0.0722),
    4: ("FCC", 0.30, 0.11),
    5: ("BT.601", 0.299, 0.114),
    6: ("BT.601", 0.299, 0.114),
    7: ("SMPTE 240M", 0.212, 0.087),
    9: ("BT.2020", 0.2627, 0.0593),
}
MATRIX_BT709, MATRIX_BT601, MATRIX_BT2020 = 1, 6, 9
TRANSFER_NAMES = {1: "BT.709", 6: "BT.601", 13: "sRGB", 14: "BT.2020 10-bit", 15: "BT.2020 12-bit", 16: "PQ",
                  18: "HLG"}


def guess_matrix(width: int, height: int, primaries: int = UNSPECIFIED) -> int:
    """The matrix players assume for an untagged stream of this size (BT.2020 if its primaries are BT.2020)."""
    if primaries == PRIMARIES_BT2020:
        return MATRIX_BT2020
    return MATRIX_BT709 if width >= 1280 or height > 576 else MATRIX_BT601


@dataclass(frozen=True)
class Colour:
    """A stream's colour tags (H.273 code points) and whether the matrix or range was guessed."""

    matrix: int
    full_range: bool
    primaries: int = UNSPECIFIED
    transfer: int = UNSPECIFIED
    matrix_guessed: bool = False
    range_guessed: bool = False

    @property
    def range_code(self) -> int:
        return RANGE_FULL if self.full_range else RANGE_LIMITED

    def describe(self) -> str:
        """E.g. ``BT.709 matrix (tagged), limited range (tagged), transfer HLG (18), primaries 9``."""
        matrix_source = "guessed from the size" if self.matrix_guessed else "tagged"
        range_source = "from the pixel format" if self.range_guessed else "tagged"
        transfer = TRANSFER_NAMES.get(self.transfer, "unspecified" if self.transfer == UNSPECIFIED else "other")
        return (f"{MATRICES[self.matrix][0]} matrix ({matrix_source}), {'full' if self.full_range else 'limited'} "
                f"range ({range_source}), transfer {transfer} ({self.transfer}), primaries {self.primaries}")


def colour_from_tags(matrix: int, color_range: int, primaries: int, transfer: int, width: int, height: int,
                     pix_fmt: str = "") -> Colour:
    """The colour of a Y'CbCr stream from its tags; raises ValueError for a matrix this module cannot convert."""
    matrix_guessed = matrix in (UNSPECIFIED, RESERVED)
    if matrix_guessed:
        matrix = guess_matrix(width, height, primaries)
    elif matrix not in MATRICES:
        raise ValueError(f"colour matrix {matrix} (H.273 code point) is not supported; "
                         f"supported: {sorted(MATRICES)}")
    range_guessed = color_range not in (RANGE_LIMITED, RANGE_FULL)
    full_range = pix_fmt.startswith("yuvj") if range_guessed else color_range == RANGE_FULL
    return Colour(matrix, full_range, primaries, transfer, matrix_guessed, range_guessed)


def _levels(bit_depth: int, full_range: bool) -> tuple[float, float, float, float]:
    """(luma offset, luma span, chroma centre, chroma span) in code values of ``bit_depth`` bits."""
    if full_range:
        top = float(2 ** bit_depth - 1)
        return 0.0, top, float(2 ** (bit_depth - 1)), top
    scale = float(2 ** (bit_depth - 8))
    return 16.0 * scale, 219.0 * scale, 128.0 * scale, 224.0 * scale


def _upsample(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """A chroma plane repeated over the luma samples it covers, cropped to (height, width)."""
    rows = -(-height // plane.shape[0])
    columns = -(-width // plane.shape[1])
    return plane.repeat(rows, axis=0).repeat(columns, axis=1)[:height, :width]


def _downsample(plane: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """The mean of each rows x columns block (edge samples repeated to complete the last blocks)."""
    height, width = plane.shape
    padded = np.pad(plane, ((0, -height % rows), (0, -width % columns)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // rows, rows, padded.shape[1] // columns, columns)
    return blocks.mean(axis=(1, 3))


def ycbcr_to_rgb(luma: np.ndarray, cb: np.ndarray, cr: np.ndarray, bit_depth: int, colour: Colour) -> np.ndarray:
    """Y'CbCr planes (any bit depth and chroma subsampling) as an (H, W, 3) float32 RGB image in [0, 1], unrounded
    (clipped: values outside the RGB cube, e.g. limited range's super-white, are brought back to it)."""
    height, width = luma.shape
    if cb.shape != cr.shape or cb.shape[0] * 2 < height or cb.shape[1] * 2 < width:
        raise ValueError(f"chroma planes {cb.shape}, {cr.shape} do not cover a {luma.shape} luma plane")
    luma_offset, luma_span, centre, chroma_span = _levels(bit_depth, colour.full_range)
    _, kr, kb = MATRICES[colour.matrix]
    kg = 1.0 - kr - kb
    y = (luma.astype(np.float32) - luma_offset) / luma_span
    # Scaled at chroma resolution, then repeated: four times less arithmetic for 4:2:0.
    pb = (cb.astype(np.float32) - centre) / chroma_span
    pr = (cr.astype(np.float32) - centre) / chroma_span
    rgb = np.empty((height, width, 3), np.float32)
    rgb[..., 0] = y + _upsample(np.float32(2.0 * (1.0 - kr)) * pr, height, width)
    rgb[..., 1] = y - _upsample((np.float32(2.0 * (1.0 - kb) * kb / kg) * pb
                                 + np.float32(2.0 * (1.0 - kr) * kr / kg) * pr), height, width)
    rgb[..., 2] = y + _upsample(np.float32(2.0 * (1.0 - kb)) * pb, height, width)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def rgb_to_ycbcr(rgb: np.ndarray, bit_depth: int, chroma_shape: tuple[int, int], colour: Colour
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An (H, W, 3) RGB image in [0, 1] (any float or the integer range of its dtype) as rounded Y', Cb, Cr planes
    of ``bit_depth`` bits, the chroma planes of ``chroma_shape`` (rows, columns): 4:2:0, 4:2:2 or 4:4:4."""
    if np.issubdtype(rgb.dtype, np.integer):
        rgb = rgb.astype(np.float32) / np.iinfo(rgb.dtype).max
    red, green, blue = (rgb[..., channel].astype(np.float32) for channel in range(3))
    _, kr, kb = MATRICES[colour.matrix]
    y = kr * red + (1.0 - kr - kb) * green + kb * blue
    pb = (blue - y) / (2.0 * (1.0 - kb))
    pr = (red - y) / (2.0 * (1.0 - kr))
    height, width = y.shape
    rows, columns = -(-height // chroma_shape[0]), -(-width // chroma_shape[1])
    if (rows, columns) != (1, 1):
        pb, pr = _downsample(pb, rows, columns), _downsample(pr, rows, columns)
    luma_offset, luma_span, centre, chroma_span = _levels(bit_depth, colour.full_range)
    top = 2 ** bit_depth - 1
    dtype = np.uint8 if bit_depth == 8 else np.uint16

    def quantise(values: np.ndarray, offset: float, span: float) -> np.ndarray:
        return np.clip(np.rint(values * span + offset), 0, top).astype(dtype)

    return quantise(y, luma_offset, luma_span), quantise(pb, centre, chroma_span), quantise(pr, centre, chroma_span)


def image_colour(width: int, height: int) -> Colour:
    """The colour written for RGB sources (images, RGB video): the size's usual matrix, limited range."""
    return Colour(guess_matrix(width, height), full_range=False, matrix_guessed=True)


def integer_rgb(rgb: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """RGB (float in [0, 1], or integers at their dtype's full scale) as the rounded integers of ``dtype``
    (uint8 or uint16)."""
    if rgb.dtype == dtype:
        return rgb
    scale = 1 if rgb.dtype.kind == "f" else np.iinfo(rgb.dtype).max
    return np.rint(rgb.astype(np.float32) / scale * np.iinfo(dtype).max).astype(dtype)
