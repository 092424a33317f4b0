"""The fused layers of the CPU inference route (deploy/cpu/fused.py, deploy/cpu/resize.py, deploy/cpu/banded_warp.py):
the same values as the plain layers to float32 rounding, taken only where they should be, and never in training."""
import copy
from pathlib import Path

import pytest
import torch
from torch import nn

import deploy.cpu.banded_warp
import deploy.cpu.resize
import models
from deploy.cpu import accelerate
from deploy.cpu.banded_warp import banded_route, warp_in_bands
from deploy.cpu.fused import run_layers
from deploy.cpu.resize import upsample
from models.scales import normalize_frame
from pipeline.forward_cost import count_flops
from video.readers import read_video_frames

CLIP = Path(__file__).resolve().parents[1] / "assets" / "bbb_448x256.mp4"
FUSED_OP = "mkldnn::_convolution_pointwise"


def _channels_last(*shape: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator).contiguous(memory_format=torch.channels_last)


def _op_names(function) -> set[str]:
    with torch.profiler.profile() as profiler:
        function()
    return {event.name for event in profiler.events()}


def _stack(seed: int = 0) -> nn.Sequential:
    """Every pattern run_layers fuses: upsampling+PReLU, conv+PReLU, conv+ReLU, a plain conv last."""
    torch.manual_seed(seed)
    stack = nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.PReLU(),
        nn.Conv2d(5, 8, 3, padding=1), nn.PReLU(init=0.1),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 6, 3, padding=1),
    )
    with torch.no_grad():
        for prelu in (stack[1], stack[3]):
            prelu.weight.uniform_(-0.5, 0.5)  # negative slopes too: PReLU is not a leaky ReLU of slope 0.25 only
    return stack.eval()


def test_fused_stack_matches_plain_layers_and_uses_fused_convolutions():
    stack, x = _stack(), _channels_last(2, 5, 9, 13)
    residual = _channels_last(2, 6, 9, 13, seed=1)
    with torch.no_grad():
        expected = stack(x) + residual
        got = run_layers(stack, x, residual)
        assert FUSED_OP in _op_names(lambda: run_layers(stack, x, residual))
        assert FUSED_OP not in _op_names(lambda: stack(x) + residual)
    assert got.shape == expected.shape == (2, 6, 9, 13)
    assert (got - expected).abs().max().item() <= 1e-5


def test_training_and_float64_run_the_plain_layers_exactly():
    stack, x = _stack(), _channels_last(1, 5, 8, 8)
    residual = _channels_last(1, 6, 8, 8, seed=1)
    got = run_layers(stack, x, residual)  # autograd on: oneDNN's fused ops have no backward
    assert torch.equal(got, stack(x) + residual) and got.requires_grad
    got.sum().backward()
    assert stack[2].weight.grad is not None
    stack64, x64 = _stack().double(), x.double()
    with torch.no_grad():
        assert torch.equal(run_layers(stack64, x64), stack64(x64))


@pytest.mark.parametrize("scale, align_corners, size", [
    (2, False, (7, 5)), (2, False, (64, 96)), (4, True, (5, 9)), (4, True, (32, 64)), (2, True, (16, 24)),
])
def test_upsampling_kernel_matches_interpolate(scale, align_corners, size):
    x = _channels_last(2, 6, *size)
    layer = nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=align_corners)
    prelu = nn.PReLU(init=-0.3)
    with torch.no_grad():
        for activation in (None, prelu):
            expected = layer(x) if activation is None else activation(layer(x))
            got = upsample(layer, x, activation)
            assert got.shape == expected.shape and got.is_contiguous(memory_format=torch.channels_last)
            assert (got - expected).abs().max().item() <= 1e-6 * max(1.0, expected.abs().max().item())


def test_upsampling_without_numba_is_interpolate_itself(monkeypatch):
    monkeypatch.setattr(deploy.cpu.resize, "numba", None)
    x, layer, prelu = _channels_last(1, 3, 6, 6), nn.Upsample(scale_factor=2, mode="bilinear"), nn.PReLU()
    with torch.no_grad():
        assert torch.equal(upsample(layer, x, prelu), prelu(layer(x)))


def _real_frames(height: int, width: int) -> list[torch.Tensor]:
    frames = read_video_frames(CLIP, max_frames=4)
    return [torch.from_numpy(f[:height, :width].copy()).permute(2, 0, 1)[None].float() / 255 for f in frames]


def test_flop_count_of_the_plain_network_is_the_same_with_and_without_autograd():
    model = models.get_model_class("student_STMFNet")().eval()
    frames = [torch.rand(1, 3, 64, 64) for _ in range(4)]
    with count_flops() as with_autograd:
        model(*frames)
    with count_flops() as inference, torch.inference_mode():
        model(*frames)
    assert inference["total"] == with_autograd["total"] > 0


def test_banded_warp_matches_whole_frame_warp_with_one_row_bands(monkeypatch, golden_weights):
    """Bands of one row: every band's convolution needs the rows above and below it, and the warp its true rows."""
    model = models.get_model_class("student_STMFNet")()
    model.load_state_dict(golden_weights.golden_state_dict(model.state_dict()))
    plain = model.eval()
    model = accelerate(copy.deepcopy(plain))
    frames = [frame.contiguous(memory_format=torch.channels_last) for frame in _real_frames(32, 48)]
    monkeypatch.setattr(deploy.cpu.banded_warp, "_BAND_BYTES", 1)
    with torch.no_grad():
        features = model.feature_extractor(*(normalize_frame(frame) for frame in frames[1:3]))
        for scale, frame in (("full", frames[1]), ("double", model.upsampler(frames[1]))):
            subnetworks = model.get_kernel.subnetworks(scale, 1)
            assert banded_route(frame, subnetworks)
            banded = warp_in_bands(subnetworks, features, model.adacof.pad(frame), model.adacof.dilation)
            plain_subnetworks = plain.get_kernel.subnetworks(scale, 1)
            whole = plain.adacof(frame, *(subnetwork(features) for subnetwork in plain_subnetworks))
            assert banded.shape == whole.shape == frame.shape
            assert (banded - whole).abs().max().item() <= 1e-5

