"""results.txt of every test set against literal files laid out by the original's format strings, and the saved
PNGs against torchvision's save_image (what the original called)."""
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from pipeline.evaluation import ItemResult, save_frame, save_image_pixels, summarize
from pipeline.results_file import RESULTS_LAYOUTS, results_text

METRICS = ["PSNR", "SSIM"]
SNUFILM_SETS = [name for name in RESULTS_LAYOUTS if name.startswith("Snufilm")]


def _item(name, sequence, psnr, ssim, seconds=0.5, load_seconds=0.25):
    return ItemResult(name, sequence, f"{name}.png", {"PSNR": psnr, "SSIM": ssim}, seconds, load_seconds)


@pytest.mark.parametrize("dataset", ["Ucf101_quintuplet", *SNUFILM_SETS])
def test_item_sets_write_one_line_per_item_then_average_and_a_blank_line(dataset):
    # 50.4945 is a Python float (a per-item score): Python's round gives 50.495. The mean, a numpy float64 in the
    # original, goes through numpy's round.
    summary = summarize([_item("1", "1", 50.4945, 0.91234), _item("12", "12", 30.0, 0.8)], METRICS)
    assert results_text(summary, dataset) == (
        "1               -- {'PSNR': 50.495, 'SSIM': 0.912}\n"
        "12              -- {'PSNR': 30.0, 'SSIM': 0.8}\n"
        "Average         -- {'PSNR': 40.247, 'SSIM': 0.856}\n"
        "\n"
    )


def test_vfitex_writes_sequence_means_then_average():
    items = [
        _item("a/frame4", "a", 50.4945, 0.5), _item("a/frame6", "a", 50.4945, 0.7),
        _item("long_sequence_name_4K/frame4", "long_sequence_name_4K", 20.0, 0.25),
    ]
    assert results_text(summarize(items, METRICS), "VFITex_quintuplet") == (
        "a               -- {'PSNR': 50.494, 'SSIM': 0.6}\n"  # np.mean -> numpy's round: 50.494
        "long_sequence_name_4K -- {'PSNR': 20.0, 'SSIM': 0.25}\n"
        "Average         -- {'PSNR': 35.247, 'SSIM': 0.425}\n"
    )


def test_davis_lines_carry_the_running_time_per_window_and_the_file_ends_with_the_mean_sequence_time():
    items = [
        _item("bear/frame3", "bear", 30.0, 0.9, seconds=0.5, load_seconds=0.25),
        _item("bear/frame5", "bear", 32.0, 0.8, seconds=0.5, load_seconds=0.25),
        _item("car/frame3", "car", 25.0, 0.75, seconds=1.0, load_seconds=0.125),
    ]
    # bear: 1.5 s for 2 windows -> 0.75; car: 1.125 s, running (1.5 + 1.125) / 3 = 0.875; mean time (1.5 + 1.125) / 2
    assert results_text(summarize(items, METRICS), "Davis90_quintuplet") == (
        "bear            -- {'PSNR': 31.0, 'SSIM': 0.85}\tAverage time: 0.75\n"
        "car             -- {'PSNR': 25.0, 'SSIM': 0.75}\tAverage time: 0.875\n"
        "Average         -- {'PSNR': 28.0, 'SSIM': 0.8}\n"
        "Average average time: 1.3125\n"
        "\n"
    )


def test_every_test_set_has_a_layout():
    from data import TEST_SETS

    assert set(RESULTS_LAYOUTS) == set(TEST_SETS)
    with pytest.raises(ValueError, match="no results.txt layout"):
        results_text(summarize([_item("1", "1", 30.0, 0.9)], METRICS), "Vimeo90k_septuplet")


def _frame_with_ties():
    # float32 values whose x * 255 is exactly k + 0.5: save_image rounds them up, round-half-even does not always.
    levels = torch.arange(0, 255, dtype=torch.float32) + 0.5
    values = levels / 255
    ties = values[values * 255 == levels]
    extra = torch.tensor([-0.3, 0.0, 1.0, 1.2, 0.4999, 0.77777])
    pixels = torch.cat([ties, extra, torch.rand(3 * 16 * 16 - ties.numel() - extra.numel())])
    return pixels.view(3, 16, 16), ties.numel()


def test_saved_pngs_equal_torchvision_save_image(tmp_path):
    frame, num_ties = _frame_with_ties()
    assert num_ties > 100
    save_frame(frame, tmp_path / "ours.png")
    torchvision.utils.save_image(frame[None], tmp_path / "torchvision.png")
    ours, reference = (np.asarray(Image.open(tmp_path / name)) for name in ("ours.png", "torchvision.png"))
    np.testing.assert_array_equal(ours, reference)
    np.testing.assert_array_equal(save_image_pixels(frame), reference)
    # ties go up: the first tie is 0.5 / 255 -> level 1, where rounding half to even would give 0
    half_even = frame.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert ours[0, 0, 0] == 1 and half_even[0, 0, 0] == 0
    assert int((ours != half_even).sum()) >= num_ties // 3
