"""``calc_ssim`` (the original's MATLAB-style SSIM) against ``skimage.metrics.structural_similarity``.

Both use an 11-tap Gaussian window with sigma 1.5 (skimage: ``gaussian_weights=True``, which truncates at 3.5
sigma = radius 5), population covariances, C1 = (0.01 L)^2 and C2 = (0.03 L)^2 with L = 255. They differ in two
ways:

1. Borders: ``calc_ssim`` replicate-pads by 5 pixels and averages the whole map; skimage filters with reflection
   and averages only the map at least 5 pixels from the border. Padding the images by 5 with edge values before
   calling skimage removes this difference exactly, and without padding it stays below 0.01 on 256x256 frames
   (0.005 measured; it shrinks as frames grow).
2. Colour: ``calc_ssim`` treats R, G, B as a third dimension of an 11x11x11 window (replicate-padded along the
   channel axis), so every channel's local statistics are weighted sums over the three channels; skimage scores
   each channel on its own and averages. On grey frames (three equal channels) the two agree; on natural colour
   frames the gap is small (at most 0.017 measured on neighbouring video frames), but for colour noise that is
   independent per channel the 3D window pools the channels and scores far higher.

Frames are 8-bit crops of the shipped clip, scored in float32 (conv3d in float64 is ten times slower on CPU)
except where the match is exact.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from metrics import calc_ssim
from video.readers import read_video_frames

CLIP = Path(__file__).resolve().parents[1] / "assets" / "bbb_448x256.mp4"
SSIM_RADIUS = 5  # half of the 11-pixel window


@pytest.fixture(scope="module")
def video_frames() -> list[np.ndarray]:
    return read_video_frames(CLIP, max_frames=12)


def crop(frame: np.ndarray, size: int) -> np.ndarray:
    top, left = (frame.shape[0] - size) // 2, (frame.shape[1] - size) // 2
    return frame[top:top + size, left:left + size]


def to_grey(frame: np.ndarray) -> np.ndarray:
    """The frame's mean over channels in all three channels (8-bit)."""
    return np.repeat(frame.mean(axis=2, keepdims=True).round().astype(np.uint8), 3, axis=2)


def ours(first: np.ndarray, second: np.ndarray, dtype: torch.dtype = torch.float32) -> float:
    as_tensor = lambda image: torch.from_numpy(image).permute(2, 0, 1)[None].to(dtype) / 255  # noqa: E731
    return calc_ssim(as_tensor(first), as_tensor(second)).item()


def skimage_ssim(first: np.ndarray, second: np.ndarray, edge_pad: int = 0) -> float:
    if edge_pad:
        padding = ((edge_pad, edge_pad), (edge_pad, edge_pad), (0, 0))
        first, second = np.pad(first, padding, mode="edge"), np.pad(second, padding, mode="edge")
    return structural_similarity(
        first.astype(np.float64),
        second.astype(np.float64),
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )


@pytest.mark.parametrize("later", [6, 11], ids=["next-frame", "six-frames-later"])
def test_grey_frames_match_skimage_exactly_once_borders_are_replicated(video_frames, later):
    first, second = to_grey(crop(video_frames[5], 96)), to_grey(crop(video_frames[later], 96))
    expected = skimage_ssim(first, second, edge_pad=SSIM_RADIUS)
    assert expected < 0.99  # a real difference, not two near-identical frames
    assert ours(first, second, torch.float64) == pytest.approx(expected, abs=1e-12)


def test_grey_frames_differ_from_plain_skimage_only_by_border_handling(video_frames):
    first, second = to_grey(crop(video_frames[5], 256)), to_grey(crop(video_frames[6], 256))
    assert abs(ours(first, second) - skimage_ssim(first, second)) < 0.01


def test_colour_frames_are_close_to_skimage(video_frames):
    first, second = crop(video_frames[5], 256), crop(video_frames[6], 256)
    assert abs(ours(first, second) - skimage_ssim(first, second)) < 0.025


def test_the_3d_window_pools_channels_so_independent_colour_noise_scores_higher(video_frames):
    first = crop(video_frames[5], 128)
    noise = np.random.default_rng(0).normal(0, 12, first.shape)
    noisy = np.clip(first + noise, 0, 255).round().astype(np.uint8)
    assert ours(first, noisy) > skimage_ssim(first, noisy) + 0.1
