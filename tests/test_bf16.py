"""The bfloat16 CPU route (``--precision bf16``): convolutions in bfloat16 through the accelerated route's fused
oneDNN layers, the picture-carrying GridNet row in float32, and a quality within 0.05 dB PSNR of float32 on the
shipped clip."""
from pathlib import Path

import copy

import torch
from torch import nn

from deploy.cpu import accelerate
from deploy.cpu.banded_warp import banded_route, warp_in_bands
from deploy.cpu.fused import converted, run_layers
from models.checkpoint import load_checkpoint
from models.gridnet import MIMOGridNet
from models.resnet3d import Conv3d
from models.scales import normalize_frame
from models.student import student_STMFNet
from tools.precision_check import DEMO_CHECKPOINT, clip_frames, compare_window, window_starts

FUSED_OP = "mkldnn::_convolution_pointwise"


def _autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _ops_and_output(function):
    with torch.profiler.profile() as profiler:
        output = function()
    return {event.name for event in profiler.events()}, output


def test_fused_layers_run_in_bfloat16_under_autocast():
    torch.manual_seed(0)
    stack = nn.Sequential(nn.Conv2d(5, 8, 3, padding=1), nn.PReLU(init=0.1), nn.Conv2d(8, 6, 3, padding=1)).eval()
    x = torch.randn(2, 5, 9, 13).contiguous(memory_format=torch.channels_last)
    residual = torch.randn(2, 6, 9, 13).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        exact = stack(x) + residual
        with _autocast():
            ops, got = _ops_and_output(lambda: run_layers(stack, x, residual))
            plain = stack(x) + residual
    # The fused add rounds the sum to bfloat16 too; autocast's own add promotes it to float32.
    assert FUSED_OP in ops and got.dtype == torch.bfloat16 and plain.dtype == torch.float32
    # bfloat16 keeps 8 significant bits: both routes are that far from float32, and that close to each other.
    scale = exact.abs().max().item()
    assert 0 < (got.float() - exact).abs().max().item() <= 2e-2 * scale
    assert (got.float() - plain.float()).abs().max().item() <= 2e-2 * scale


def test_converted_weights_are_made_once_per_parameter_version():
    conv = nn.Conv2d(3, 4, 3)
    first = converted(conv.weight, torch.bfloat16)
    assert converted(conv.weight, torch.bfloat16) is first and first.dtype == torch.bfloat16
    with torch.no_grad():
        conv.weight.mul_(2)  # an optimizer step or a load_state_dict changes the values in place
    second = converted(conv.weight, torch.bfloat16)
    assert second is not first and torch.equal(second, conv.weight.detach().to(torch.bfloat16))
    assert converted(conv.weight, torch.float32) is conv.weight


def test_conv3d_runs_in_bfloat16_under_autocast_only_for_inference():
    torch.manual_seed(0)
    conv = accelerate(Conv3d(4, 6, kernel_size=3, padding=1))
    x = torch.randn(1, 4, 5, 8, 10)
    exact = nn.functional.conv3d(x, conv.weight, conv.bias, padding=1)
    with torch.no_grad(), _autocast():
        got = conv(x)
    assert got.dtype == torch.bfloat16 and got.is_contiguous(memory_format=torch.channels_last_3d)
    assert 0 < (got.float() - exact).abs().max().item() <= 2e-2 * exact.abs().max().item()
    with _autocast():  # autograd on: autocast's own convolution, which has a backward
        trained = conv(x)
    assert trained.dtype == torch.bfloat16 and trained.requires_grad


def test_gridnet_output_row_stays_float32_under_autocast():
    torch.manual_seed(0)
    grid = MIMOGridNet((6, 6, 6), (3,), grid_chs=(4, 8, 12), n_row=3, n_col=4, outrow=(1,)).eval()
    seen = {}

    def record(name):
        def hook(module, inputs):
            seen[name] = inputs[0].dtype
        return hook

    for name, block in grid.named_children():
        block.register_forward_pre_hook(record(name))
    inputs = [torch.rand(1, 6, 32 // 2**row, 32 // 2**row) for row in range(3)]
    with torch.no_grad(), _autocast():
        (output,) = grid(*inputs)
    assert output.dtype == torch.float32
    into_row_1 = [name for name in seen if name.startswith(("lateral_1_", "down_0_", "up_1_", "lateral_final_1"))]
    assert len(into_row_1) == 9 and all(seen[name] == torch.float32 for name in into_row_1)
    assert seen["lateral_0_1"] == seen["lateral_2_1"] == torch.bfloat16  # the other rows do run in bfloat16


def test_bf16_stays_within_0_05_db_of_float32_on_the_clip():
    """The demo student on three windows of the shipped clip (tools/precision_check.py measures eight)."""
    assert Path(DEMO_CHECKPOINT).is_file()
    model = student_STMFNet()
    load_checkpoint(model, DEMO_CHECKPOINT)
    model.eval()
    frames = clip_frames()
    rows = [compare_window(model, frames, start) for start in window_starts(len(frames), 3)]
    fp32, bf16, apart = (sum(column) / len(rows) for column in zip(*rows))
    assert abs(bf16 - fp32) <= 0.05
    assert 40 < apart < 80  # bf16 does differ from float32, by far less than either differs from the truth


def test_banded_warp_runs_under_bf16_autocast_and_matches_the_plain_warp():
    torch.manual_seed(0)
    plain = student_STMFNet().eval()
    model = accelerate(copy.deepcopy(plain))
    frames = [frame[..., :32, :48].contiguous(memory_format=torch.channels_last) for frame in clip_frames()[:4]]
    with torch.no_grad(), _autocast():
        features = model.feature_extractor(*(normalize_frame(frame) for frame in frames[1:3]))
        frame = model.upsampler(frames[1])
        subnetworks = model.get_kernel.subnetworks("double", 1)
        assert banded_route(frame, subnetworks)
        banded = warp_in_bands(subnetworks, features, model.adacof.pad(frame), model.adacof.dilation)
        plain_subnetworks = plain.get_kernel.subnetworks("double", 1)
        whole = plain.adacof(frame, *(subnetwork(features) for subnetwork in plain_subnetworks))
    assert banded.dtype == whole.dtype == torch.float32 and banded.shape == whole.shape == frame.shape
    # Both warp with bfloat16 kernels, rounded at different points (measured 6e-4; half an 8-bit step is 2e-3).
    assert (banded - whole).abs().max().item() <= 2e-3
