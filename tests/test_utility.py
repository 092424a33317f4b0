"""utility.py: the original utility names (tensor2rgb, calc_lpips, FoldUnfold, read_frame_yuv2rgb) and nothing
else."""
from pathlib import Path

import numpy as np
import pytest
import torch

import utility
from metrics import LPIPS
from video.yuv import YUVFormat, split_planes, yuv_to_rgb


def test_utility_re_exports_only_the_original_names():
    original = {"CharbonnierFunc", "calc_psnr", "calc_ssim", "gaussian_kernel", "make_optimizer", "make_scheduler",
                "moduleNormalize", "quantize", "tensor2rgb", "calc_lpips", "FoldUnfold", "read_frame_yuv2rgb"}
    assert set(utility.__all__) <= original
    source = Path(utility.__file__).read_text()
    assert "pipeline" not in source and "def load_checkpoint" not in source


def test_tensor2rgb_is_the_original_batch_of_8bit_images():
    frames = torch.tensor([0.0, 0.5 / 255, 1.5 / 255, 1.2, -0.1, 0.5], dtype=torch.float64).view(1, 3, 1, 2)
    frames = torch.cat([frames, 1 - frames])
    images = utility.tensor2rgb(frames)
    assert images.dtype == np.uint8 and images.shape == (2, 1, 2, 3)
    # (B, H, W, C); clamped, then rounded half to even like the metrics
    np.testing.assert_array_equal(images[0, 0], [[0, 2, 0], [0, 255, 128]])
    np.testing.assert_array_equal(images[1, 0], [[255, 254, 255], [254, 0, 128]])  # 253.5 and 254.5 -> 254


def test_calc_lpips_is_the_metric_on_8bit_frames_with_the_original_shape(tmp_path, monkeypatch):
    from test_metrics import _fake_alexnet_checkpoint

    _fake_alexnet_checkpoint(tmp_path / "alexnet.pth")
    monkeypatch.setenv("LPIPS_ALEXNET_WEIGHTS", str(tmp_path / "alexnet.pth"))
    generator = torch.Generator().manual_seed(0)
    gt, out = torch.rand(2, 3, 32, 32, generator=generator), torch.rand(2, 3, 32, 32, generator=generator)
    distance = utility.calc_lpips(gt, out)
    assert distance.shape == (2, 1, 1, 1)
    with torch.no_grad():
        expected = LPIPS(tmp_path / "alexnet.pth")(gt, out)
    assert torch.equal(distance.flatten(), expected)
    assert torch.all(utility.calc_lpips(gt, gt) == 0)


def test_fold_unfold_keeps_the_original_geometry_and_averages_overlaps():
    frame = torch.rand(1, 3, 64, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    folder = utility.FoldUnfold(64, 48, patch_size=32, overlap=8)
    # stride 24: 64 // 24 + 1 = 3 rows, padded by (72 + 8 - 64) // 2 = 8; 48 // 24 + 1 = 3 columns, padded by 16
    assert (folder.pad_h, folder.pad_w, folder.height_pad, folder.width_pad) == (8, 16, 80, 80)
    patches, again = folder.fold_to_patches(frame, frame)
    assert patches.shape == (9, 3, 32, 32) and torch.equal(patches, again)
    padded = torch.nn.functional.pad(frame, (16, 16, 8, 8), mode="reflect")
    assert torch.equal(patches[4], padded[0, :, 24:56, 24:56])  # row 1, column 1
    assert torch.allclose(folder.unfold_to_frame(patches), frame, rtol=0, atol=1e-15)
    # patch k filled with k: a pixel covered by patches 0 and 1 (padded column 24..31 of row 0) gets their mean
    labelled = torch.arange(9, dtype=torch.float64).view(9, 1, 1, 1).expand(9, 3, 32, 32)
    merged = folder.unfold_to_frame(labelled)
    assert merged.shape == (1, 3, 64, 48)
    assert merged[0, 0, 0, 0].item() == 0.0 and merged[0, 0, 0, 24 - 16].item() == 0.5
    with pytest.raises(ValueError, match="even"):
        utility.FoldUnfold(63, 48, 32, 8)


@pytest.mark.parametrize("pix_fmt, bit_depth", [("420", 8), ("420", 10), ("444", 8), ("444", 16)])
def test_read_frame_yuv2rgb_reads_the_asked_frame_of_a_stream(tmp_path, pix_fmt, bit_depth):
    layout = YUVFormat(8, 6, pix_fmt, bit_depth)
    generator = np.random.default_rng(0)
    high = 2 ** bit_depth
    frames = [generator.integers(0, high, layout.bytes_per_frame // layout.sample_dtype.itemsize)
              .astype(layout.sample_dtype).tobytes() for _ in range(3)]
    (tmp_path / "clip.yuv").write_bytes(b"".join(frames))
    with open(tmp_path / "clip.yuv", "rb") as stream:
        rgb = utility.read_frame_yuv2rgb(stream, 8, 6, 2, bit_depth, pix_fmt)
        with pytest.raises(ValueError, match="beyond its end"):
            utility.read_frame_yuv2rgb(stream, 8, 6, 3, bit_depth, pix_fmt)
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, yuv_to_rgb(*split_planes(frames[2], layout), bit_depth=bit_depth))


def test_read_frame_yuv2rgb_of_8bit_420_is_within_one_level_of_opencv(tmp_path):
    import cv2

    width, height = 16, 8
    generator = np.random.default_rng(1)
    planes = np.concatenate([generator.integers(16, 236, width * height),
                             generator.integers(16, 241, width * height // 2)]).astype(np.uint8)
    (tmp_path / "clip.yuv").write_bytes(planes.tobytes())
    with open(tmp_path / "clip.yuv", "rb") as stream:
        rgb = utility.read_frame_yuv2rgb(stream, width, height, 0, 8)
    expected = cv2.cvtColor(planes.reshape(height * 3 // 2, width), cv2.COLOR_YUV2RGB_I420)
    assert np.abs(rgb.astype(int) - expected.astype(int)).max() <= 1
