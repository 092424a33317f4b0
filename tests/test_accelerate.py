"""deploy.cpu.accelerate: block by block, the accelerated module gives the plain module's values (to float32
rounding; under bfloat16 autocast within bfloat16's), takes the fast route only for CPU inference, keeps every
parameter and state-dict key, and falls back to the plain layers where the oneDNN probe fails."""
import copy
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

import deploy.cpu.route
import models
from deploy.cpu import accelerate
from deploy.cpu.probe import onednn_unavailable_reason
from models.feature import UMultiScaleResNext
from models.gridnet import DownSamplingBlock, LateralBlock, MIMOGridNet, UpSamplingBlock
from models.kernel_estimation import KernelEstimation
from models.resnet3d import Conv3d
from models.texture import student_UNet3d_18
from video.readers import read_video_frames

CLIP = Path(__file__).resolve().parents[1] / "assets" / "bbb_448x256.mp4"
FUSED_OP = "mkldnn::_convolution_pointwise"
ONEDNN_3D_OP = "aten::mkldnn_convolution"


def _randomised(module: nn.Module, seed: int = 0) -> nn.Module:
    """``module`` in eval mode with PReLU slopes of both signs (a PReLU is not only a leaky ReLU of slope 0.25)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for prelu in (m for m in module.modules() if isinstance(m, nn.PReLU)):
            prelu.weight.uniform_(-0.5, 0.5)
    return module.eval()


def _inputs(*shapes: tuple[int, ...], seed: int = 1) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=generator) for shape in shapes]


def _ops(function) -> set[str]:
    with torch.profiler.profile() as profiler:
        function()
    return {event.name for event in profiler.events()}


def _both(plain: nn.Module, run) -> tuple[torch.Tensor, torch.Tensor, set[str]]:
    """``run(plain)`` and ``run`` of an accelerated copy without autograd, and the accelerated run's ops."""
    fast = accelerate(copy.deepcopy(plain))
    with torch.no_grad():
        expected, got = run(plain), run(fast)
        ops = _ops(lambda: run(fast))
    return expected, got, ops


def _relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    return (got.float() - expected.float()).abs().max().item() / expected.abs().max().item()


BLOCKS = {
    "lateral (projected shortcut)": (lambda: LateralBlock(6, 8), lambda b, x, r: b(x), ((2, 6, 12, 14),)),
    "lateral": (lambda: LateralBlock(8, 8), lambda b, x, r: b(x), ((2, 8, 12, 14),)),
    "down + residual": (lambda: DownSamplingBlock(6, 8), lambda b, x, r: b(x, residual=r),
                        ((2, 6, 12, 14), (2, 8, 6, 7))),
    "up + residual": (lambda: UpSamplingBlock(8, 6), lambda b, x, r: b(x, residual=r),
                      ((2, 8, 6, 7), (2, 6, 12, 14))),
    "kernel sub-networks": (lambda: KernelEstimation(5, in_channels=8, channels=10),
                            lambda b, x, r: torch.cat([t.flatten() for t in b(x)]), ((1, 8, 8, 12),)),
    "feature U-Net": (lambda: UMultiScaleResNext((32, 64, 96, 128)), lambda b, x, r: b(x[:, :3], x[:, 3:]),
                      ((1, 6, 32, 48),)),
    "3D U-Net (oneDNN Conv3d, channels-last ConvTranspose3d)": (
        lambda: student_UNet3d_18(), lambda b, x, r: b(*x.unbind(1)), ((1, 5, 3, 16, 24),)),
}


@pytest.mark.parametrize("name", BLOCKS)
def test_accelerated_block_equals_the_plain_block_to_float32_rounding(name):
    build, run, shapes = BLOCKS[name]
    inputs = _inputs(*shapes)
    x, residual = inputs[0], inputs[-1]
    expected, got, ops = _both(_randomised(build()), lambda block: run(block, x, residual))
    assert got.shape == expected.shape and got.dtype == expected.dtype == torch.float32
    assert _relative(got, expected) <= 1e-5
    assert FUSED_OP in ops or ONEDNN_3D_OP in ops or name == "feature U-Net"  # the U-Net is only laid out anew


@pytest.mark.parametrize("name", BLOCKS)
def test_accelerated_block_under_bf16_autocast_stays_within_bfloat16_rounding(name):
    build, run, shapes = BLOCKS[name]
    inputs = _inputs(*shapes)
    x, residual = inputs[0], inputs[-1]
    block = _randomised(build())
    with torch.no_grad():
        exact = run(block, x, residual)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain, got, _ = _both(block, lambda module: run(module, x, residual))
    # bfloat16 keeps 8 significant bits; a few layers in a row lose a few more (measured up to 2.3e-2 here).
    assert _relative(plain, exact) <= 5e-2 and _relative(got, exact) <= 5e-2
    assert _relative(got, plain) <= 5e-2


def test_gridnet_equals_the_plain_gridnet_and_its_inputs_go_in_channels_last():
    grid = _randomised(MIMOGridNet((6, 6, 6), (3,), grid_chs=(8, 12, 16), n_row=3, n_col=4, outrow=(1,)))
    inputs = _inputs(*[(1, 6, 32 // 2**row, 48 // 2**row) for row in range(3)])
    layouts = []
    fast = accelerate(copy.deepcopy(grid))
    fast.lateral_0_0.register_forward_pre_hook(
        lambda module, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    with torch.no_grad():
        (expected,), (got,) = grid(*inputs), fast(*inputs)
    assert layouts == [True] and _relative(got, expected) <= 1e-5


def _real_frames(height: int, width: int) -> list[torch.Tensor]:
    frames = read_video_frames(CLIP, max_frames=4)
    return [torch.from_numpy(f[:height, :width].copy()).permute(2, 0, 1)[None].float() / 255 for f in frames]


@pytest.mark.parametrize("name", ["student_STMFNet", "STMFNet"])
def test_accelerated_network_equals_the_plain_network_on_real_frames(name, golden_weights):
    plain = models.get_model_class(name)()
    plain.load_state_dict(golden_weights.golden_state_dict(plain.state_dict()))
    plain.eval()
    frames = _real_frames(96, 136)  # not a multiple of 128: padding and cropping too
    expected, got, ops = _both(plain, lambda model: model(*frames))
    assert got.shape == (1, 3, 96, 136) and FUSED_OP in ops and ONEDNN_3D_OP in ops
    assert (got - expected).abs().max().item() <= 1e-5


def test_accelerate_keeps_parameters_and_keys_and_changes_nothing_when_called_again():
    model = models.get_model_class("student_STMFNet")().eval()
    shapes = {key: value.shape for key, value in model.state_dict().items()}
    parameters = [id(parameter) for parameter in model.parameters()]
    assert accelerate(model) is model
    classes = [type(module) for module in model.modules()]
    accelerate(model)
    assert [type(module) for module in model.modules()] == classes
    assert {key: value.shape for key, value in model.state_dict().items()} == shapes
    assert [id(parameter) for parameter in model.parameters()] == parameters
    assert type(model.scale_synthesis.lateral_0_0).__name__ != "LateralBlock"


def test_accelerated_model_with_autograd_runs_the_plain_layers_exactly():
    """Training an accelerated model (or exporting, or float64) runs the plain computation, bit for bit."""
    torch.manual_seed(0)
    plain = models.get_model_class("student_STMFNet")().eval()
    fast = accelerate(copy.deepcopy(plain))
    frames = [torch.rand(1, 3, 64, 64) for _ in range(4)]
    assert FUSED_OP not in _ops(lambda: fast(*frames))
    assert torch.equal(fast(*frames), plain(*frames))
    with torch.no_grad():
        assert torch.equal(fast.double()(*[f.double() for f in frames]), plain.double()(*[f.double() for f in frames]))


def test_model_off_the_cpu_keeps_its_plain_layers():
    model = LateralBlock(4, 4).to("meta")
    accelerate(model)
    assert type(model) is LateralBlock


def test_the_probe_finds_the_onednn_entry_points_of_this_pytorch():
    assert onednn_unavailable_reason() is None


def test_without_the_private_entry_points_frames_equal_the_plain_model(monkeypatch, caplog):
    """A PyTorch release without (or with changed) oneDNN entry points: a warning, then the plain layers."""
    monkeypatch.setattr(deploy.cpu.route, "onednn_unavailable_reason", lambda: "forced by the test")
    torch.manual_seed(0)
    plain = models.get_model_class("student_STMFNet")().eval()
    frames = [torch.rand(1, 3, 64, 80) for _ in range(4)]
    with caplog.at_level(logging.WARNING, logger="deploy.cpu.route"):
        model = accelerate(copy.deepcopy(plain))
    assert "forced by the test" in caplog.text and "plain layers" in caplog.text
    assert all(type(module) in (type(p) for p in plain.modules()) for module in model.modules())
    with torch.no_grad():
        assert FUSED_OP not in _ops(lambda: model(*frames))
        assert torch.equal(model(*frames), plain(*frames))


def test_conv3d_takes_onednn_only_when_accelerated_for_inference():
    torch.manual_seed(0)
    plain = Conv3d(4, 6, kernel_size=3, stride=(1, 2, 2), padding=1)
    fast = accelerate(copy.deepcopy(plain))
    x = torch.randn(2, 4, 5, 12, 14)
    with torch.no_grad():
        fast_ops = _ops(lambda: fast(x))
        assert ONEDNN_3D_OP in fast_ops and "aten::conv3d" not in fast_ops and "aten::conv3d" in _ops(lambda: plain(x))
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)
        assert fast(x).is_contiguous(memory_format=torch.channels_last_3d)
        assert torch.equal(fast.double()(x.double()), plain.double()(x.double()))


@pytest.mark.parametrize("training", [False, True])
def test_accelerate_keeps_the_model_s_mode(training):
    model = accelerate(models.student_STMFNet().train(training))
    assert {module.training for module in model.modules()} == {training}
