"""PSNR/SSIM against the original's goldens and known values; the offline behaviour of the LPIPS wrapper."""
import math
from pathlib import Path

import pytest
import torch

from metrics import LPIPS, calc_psnr, calc_ssim, find_alexnet_weights
from metrics.perceptual import ALEXNET_CHECKPOINT, ALEXNET_URL, ALEXNET_WEIGHTS_ENV


def test_psnr_ssim_match_golden_float64(module_goldens):
    case = module_goldens["psnr_ssim"]
    gt, out = case["inputs"]["gt"], case["inputs"]["out"]
    psnr, ssim = calc_psnr(gt, out), calc_ssim(gt, out)
    assert psnr.shape == ssim.shape == (2,) and psnr.dtype == ssim.dtype == torch.float64
    torch.testing.assert_close(psnr, case["outputs"]["psnr"], rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(ssim, case["outputs"]["ssim"], rtol=1e-7, atol=1e-9)


def test_psnr_ssim_match_golden_float32(module_goldens):
    case = module_goldens["psnr_ssim"]
    gt, out = case["inputs"]["gt"].float(), case["inputs"]["out"].float()
    psnr, ssim = calc_psnr(gt, out), calc_ssim(gt, out)
    assert psnr.dtype == ssim.dtype == torch.float32
    torch.testing.assert_close(psnr.double(), case["outputs"]["psnr"], rtol=0, atol=1e-3)
    torch.testing.assert_close(ssim.double(), case["outputs"]["ssim"], rtol=0, atol=1e-4)


def test_psnr_of_mse_0_01_is_20_db():
    gt = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    out = gt.clone()
    # a quarter of the values off by 51/255 = 0.2: MSE = 0.04 / 4 = 0.01 exactly on the 8-bit grid
    out[:, :, :2, :2] = 51 / 255
    expected = -10 * math.log10(0.01 + 1e-8)
    torch.testing.assert_close(calc_psnr(gt, out), torch.full((2,), expected, dtype=torch.float64))
    assert expected == pytest.approx(20.0, abs=1e-5)


def test_ssim_size_average_gives_the_mean_over_the_batch():
    generator = torch.Generator().manual_seed(2)
    gt = torch.rand(3, 3, 16, 20, generator=generator, dtype=torch.float64)
    spread = torch.tensor([0.02, 0.1, 0.3], dtype=torch.float64).view(3, 1, 1, 1)  # one noise level per image
    noise = torch.randn(gt.shape, generator=generator, dtype=torch.float64) * spread
    out = (gt + noise).clamp(0, 1)
    per_image = calc_ssim(gt, out)
    averaged = calc_ssim(gt, out, size_average=True)
    assert per_image.shape == (3,) and averaged.shape == () and 0 < per_image[2] < per_image[1] < per_image[0] < 1
    torch.testing.assert_close(averaged, per_image.mean(), rtol=0, atol=1e-15)


def test_identical_frames_give_ssim_1_and_capped_psnr():
    frames = torch.rand(3, 3, 16, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(calc_ssim(frames, frames), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(calc_psnr(frames, frames), torch.full((3,), 80.0, dtype=torch.float64))


def test_metrics_score_8_bit_rounded_and_clamped_frames():
    generator = torch.Generator().manual_seed(2)
    gt = torch.randint(0, 256, (1, 3, 16, 16), generator=generator).double() / 255
    # Noise below half an 8-bit step, and overshoot past [0, 1], vanish in the quantisation.
    out = gt + 0.4 / 255 * (2 * torch.rand(gt.shape, generator=generator, dtype=torch.float64) - 1)
    out[gt == 1] = 1.7
    out[gt == 0] = -0.3
    assert calc_psnr(gt, out).item() == 80.0
    assert calc_ssim(gt, out).item() == pytest.approx(1.0, abs=1e-12)


def test_metrics_reject_mismatched_or_tiny_frames():
    with pytest.raises(ValueError, match="same shape"):
        calc_psnr(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 15))
    with pytest.raises(ValueError, match="at least 11x11"):
        calc_ssim(torch.rand(1, 3, 8, 16), torch.rand(1, 3, 8, 16))


def test_lpips_without_alexnet_weights_explains_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.delenv(ALEXNET_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        LPIPS()
    message = str(error.value)
    assert ALEXNET_URL in message and ALEXNET_WEIGHTS_ENV in message
    assert str(tmp_path / "hub" / "checkpoints" / ALEXNET_CHECKPOINT) in message


def test_find_alexnet_weights_search_order(tmp_path, monkeypatch):
    cached = tmp_path / "hub" / "checkpoints" / ALEXNET_CHECKPOINT
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    explicit = tmp_path / "explicit.pth"
    explicit.write_bytes(b"")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv(ALEXNET_WEIGHTS_ENV, raising=False)
    assert find_alexnet_weights() == cached
    monkeypatch.setenv(ALEXNET_WEIGHTS_ENV, str(explicit))
    assert find_alexnet_weights() == explicit
    assert find_alexnet_weights(cached) == cached


def _fake_alexnet_checkpoint(path: Path) -> dict:
    """Random tensors with torchvision AlexNet's `features` shapes (the real weights need a download)."""
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    generator = torch.Generator().manual_seed(0)
    state = {}
    for layer, shape in shapes.items():
        state[f"features.{layer}.weight"] = torch.randn(shape, generator=generator) * 0.05
        state[f"features.{layer}.bias"] = torch.randn(shape[0], generator=generator) * 0.01
    torch.save(state, path)
    return state


def test_lpips_loads_local_trunk_and_packaged_linear_layers(tmp_path):
    import lpips

    state = _fake_alexnet_checkpoint(tmp_path / "alexnet.pth")
    metric = LPIPS(tmp_path / "alexnet.pth")
    loaded = metric.model.state_dict()
    assert torch.equal(loaded["net.slice1.0.weight"], state["features.0.weight"])
    assert torch.equal(loaded["net.slice5.10.bias"], state["features.10.bias"])

    packaged_path = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    packaged = torch.load(packaged_path, map_location="cpu", weights_only=True)
    assert packaged.keys() == {f"lin{i}.model.1.weight" for i in range(5)}
    for key, value in packaged.items():
        assert torch.equal(loaded[key], value)
    assert not any(param.requires_grad for param in metric.parameters())

    frames = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    other = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        same, different = metric(frames, frames), metric(frames, other)
    assert same.shape == different.shape == (2,)
    assert torch.all(same == 0) and torch.all(different > 0)


def test_lpips_rejects_a_checkpoint_that_is_not_alexnet(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="features.0.weight"):
        LPIPS(tmp_path / "other.pth")
