"""video/colour.py and video/pixel_format.py: known Y'CbCr values of each matrix and range, the size-based guess
for untagged streams, exact round trips, and the output format chosen to keep a source's bit depth."""
from __future__ import annotations

import numpy as np
import pytest

from video.colour import Colour, colour_from_tags, integer_rgb, rgb_to_ycbcr, ycbcr_to_rgb
from video.pixel_format import default_output_format, frame_from_planes, frame_planes, png_bit_depth

BT709_LIMITED = Colour(1, full_range=False)
BT2020_LIMITED = Colour(9, full_range=False)


def pixel(rgb: tuple[float, float, float]) -> np.ndarray:
    return np.array(rgb, np.float32).reshape(1, 1, 3)


@pytest.mark.parametrize("colour, bits, rgb, expected", [
    (BT709_LIMITED, 8, (1, 0, 0), (63, 102, 240)),  # 16 + 219 * 0.2126; 128 - 224 * 0.2126 / 1.8556; 128 + 112
    (BT709_LIMITED, 8, (1, 1, 1), (235, 128, 128)),
    (Colour(6, full_range=False), 8, (1, 0, 0), (81, 90, 240)),  # BT.601: 16 + 219 * 0.299
    (Colour(1, full_range=True), 8, (0, 0, 0), (0, 128, 128)),
    (Colour(1, full_range=True), 8, (1, 1, 1), (255, 128, 128)),
    (BT2020_LIMITED, 10, (1, 0, 0), (294, 387, 960)),  # 64 + 876 * 0.2627; 512 - 896 * 0.2627 / 1.8814
    (BT2020_LIMITED, 10, (0, 0, 0), (64, 512, 512)),
])
def test_known_ycbcr_values(colour, bits, rgb, expected):
    planes = rgb_to_ycbcr(pixel(rgb), bits, (1, 1), colour)
    assert tuple(int(plane[0, 0]) for plane in planes) == expected
    back = ycbcr_to_rgb(*planes, bits, colour)[0, 0]
    assert np.abs(back - np.array(rgb)).max() < 2 / 2 ** bits  # within a code value


@pytest.mark.parametrize("colour, bits", [(BT709_LIMITED, 8), (BT2020_LIMITED, 10), (Colour(5, True), 16)])
def test_444_samples_survive_a_round_trip_through_float_rgb(colour, bits):
    """Unclipped RGB from in-gamut samples converts back to the same samples."""
    generator = np.random.default_rng(1)
    rgb = generator.uniform(0.05, 0.95, (16, 16, 3)).astype(np.float32)
    planes = rgb_to_ycbcr(rgb, bits, (16, 16), colour)
    again = rgb_to_ycbcr(ycbcr_to_rgb(*planes, bits, colour), bits, (16, 16), colour)
    for plane, plane_again in zip(planes, again):
        assert np.array_equal(plane, plane_again)


def test_420_chroma_is_the_block_mean_and_repeated_back():
    rgb = np.zeros((2, 4, 3), np.float32)
    rgb[:, :2, 0] = 1.0  # left 2x2 block red, right block black
    luma, cb, cr = rgb_to_ycbcr(rgb, 8, (1, 2), BT709_LIMITED)
    assert cb.shape == (1, 2) and cr[0].tolist() == [240, 128] and luma[0].tolist() == [63, 63, 16, 16]
    assert np.abs(ycbcr_to_rgb(luma, cb, cr, 8, BT709_LIMITED)[:, :2] - [1, 0, 0]).max() < 0.01


def test_untagged_streams_are_guessed_from_size_and_format():
    hd = colour_from_tags(2, 0, 2, 2, 1920, 1080, "yuv420p")
    assert (hd.matrix, hd.full_range, hd.matrix_guessed, hd.range_guessed) == (1, False, True, True)
    assert colour_from_tags(2, 0, 2, 2, 720, 576, "yuv420p").matrix == 6
    assert colour_from_tags(2, 0, 9, 18, 720, 576, "yuv420p10le").matrix == 9  # BT.2020 primaries
    assert colour_from_tags(2, 0, 2, 2, 640, 480, "yuvj420p").full_range
    tagged = colour_from_tags(9, 1, 9, 16, 640, 480, "yuv420p10le")
    assert (tagged.matrix, tagged.full_range, tagged.transfer, tagged.matrix_guessed) == (9, False, 16, False)
    with pytest.raises(ValueError, match="matrix 8"):
        colour_from_tags(8, 1, 2, 2, 64, 64, "yuv420p")  # YCgCo


def test_integer_rgb_rounds_to_the_dtype_scale():
    assert integer_rgb(pixel((0.5, 1.0, 0.0)), np.uint8).ravel().tolist() == [128, 255, 0]
    assert integer_rgb(np.array([[[257, 65535, 0]]], np.uint16), np.uint8).ravel().tolist() == [1, 255, 0]
    assert integer_rgb(np.array([[[1, 255, 0]]], np.uint8), np.uint16).ravel().tolist() == [257, 65535, 0]


def test_planes_survive_a_frame():
    generator = np.random.default_rng(2)
    planes = (generator.integers(0, 1024, (6, 10)).astype(np.uint16),
              *(generator.integers(0, 1024, (3, 5)).astype(np.uint16) for _ in range(2)))
    for plane, again in zip(planes, frame_planes(frame_from_planes(planes, "yuv420p10le"))):
        assert np.array_equal(plane, again)


def test_default_output_format_keeps_the_depth():
    assert default_output_format("libx264", "yuv420p10le", 10, 64, 48) == "yuv420p10le"
    assert default_output_format("libx264", "yuv422p", 8, 64, 48) == "yuv422p"
    assert default_output_format("libx264", "gbrp", 8, 64, 48) == "yuv420p"  # 8-bit RGB: as before
    assert default_output_format("libx265", "yuv420p12le", 12, 64, 48) == "yuv420p12le"
    assert default_output_format("ffv1", "rgb48le", 16, 64, 48) == "yuv420p16le"  # 16-bit PNGs into FFV1
    assert default_output_format("libx264", "yuv420p10le", 10, 63, 48) == "yuv444p10le"  # odd size
    with pytest.raises(ValueError, match="--codec mpeg4 cannot write 10-bit"):
        default_output_format("mpeg4", "yuv420p10le", 10, 64, 48)
    with pytest.raises(ValueError, match="--codec libx264 cannot write 12-bit"):
        default_output_format("libx264", "yuv420p12le", 12, 64, 48)
    assert (png_bit_depth(None, 8), png_bit_depth(None, 10), png_bit_depth("rgb24", 16)) == (8, 16, 8)
    with pytest.raises(ValueError, match="--out_pix_fmt"):
        png_bit_depth("yuv420p", 8)
