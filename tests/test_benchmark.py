"""benchmark.py and pipeline/forward_cost.py: a smoke run (the student at the smallest size, one repeat, with the profile breakdown) and the
FLOP formulas of the custom ops, and the profile's 3D-convolution category."""
import json
import math

import pytest
import torch

import benchmark
from pipeline import forward_cost
import models.resnet3d
from deploy.cpu import accelerate
from cupy_module.adacof import adacof
from cupy_module.correlation import correlation
from cupy_module.softsplat import softsplat

# Total minus trainable: the frozen Gaussian kernel and 8-tap filter, Parameters in the published checkpoints.
STUDENT_PARAMETERS = {"trainable": 1_822_063, "total": 1_822_162}


@pytest.mark.slow
def test_benchmark_student_smoke(tmp_path):
    json_path = tmp_path / "benchmark.json"
    benchmark.main(["--models", "student_STMFNet", "--sizes", "64x64", "--repeats", "1", "--profile",
                    "--device", "cpu", "--json", str(json_path)])
    report = json.loads(json_path.read_text())
    (result,) = report["results"]
    assert result["model"] == "student_STMFNet" and result["size"] == "64x64" and result["dtype"] == "float32"
    assert result["parameters"] == STUDENT_PARAMETERS
    numbers = [result["flops"], result["macs"], result["forward_s"], result["peak_memory_bytes"],
               *result["custom_op_flops"].values(), *result["profile"]["categories_ms"].values()]
    assert all(math.isfinite(number) for number in numbers)
    assert result["flops"] > 0 and result["macs"] == result["flops"] / 2
    assert result["forward_s"] > 0 and result["peak_memory_bytes"] > 0
    # The student has AdaCoF but no softsplat/correlation branch; AdaCoF's formula-counted FLOPs are in the total.
    custom = result["custom_op_flops"]
    assert custom["adacof"] > 0 and custom["softsplat"] == 0 and custom["correlation"] == 0
    assert custom["adacof"] < result["flops"]
    categories = result["profile"]["categories_ms"]
    assert categories["adacof"] > 0 and categories["conv2d"] > 0 and categories["conv3d"] > 0
    assert any("conv" in kernel["name"] for kernel in result["profile"]["conv_kernels"])


def test_custom_ops_counted_by_formula():
    frame, taps = torch.rand(1, 3, 10, 12), 9  # 3x3 kernel, dilation 1: padded by 2 around an 8x10 output
    weight, offset_i, offset_j = (torch.rand(1, taps, 8, 10) for _ in range(3))
    image, flow = torch.rand(2, 3, 8, 10), torch.rand(2, 2, 8, 10)
    first, second = torch.rand(1, 16, 8, 10), torch.rand(1, 16, 8, 10)
    with forward_cost.count_flops() as flops:
        adacof(frame, weight, offset_i, offset_j, 1)
        softsplat(image, flow, None, "summation")
        correlation(first, second)
        torch.nn.functional.conv2d(image, torch.rand(4, 3, 3, 3))
    assert flops["custom"] == {"adacof": 2 * 3 * 8 * 10 * taps * 5, "softsplat": 2 * 2 * 3 * 8 * 10 * 4,
                               "correlation": 2 * 81 * 16 * 8 * 10}
    conv_flops = 2 * (2 * 4 * 6 * 8) * (3 * 3 * 3)  # output elements times a 3x3x3 dot product
    assert flops["total"] == sum(flops["custom"].values()) + conv_flops


def test_profile_counts_onednn_conv3d_once():
    """The accelerated Conv3d modules bypass aten::conv3d; the profile still counts them as 3D convolutions, and a
    float64 call (which falls back to aten::conv3d inside the module's label) is not counted twice."""
    torch.manual_seed(0)
    conv = accelerate(models.resnet3d.Conv3d(4, 4, kernel_size=3, padding=1))
    for dtype in (torch.float32, torch.float64):
        layer = conv.to(dtype)
        volume = torch.rand(1, 4, 5, 48, 48, dtype=dtype)

        def forward():
            with torch.inference_mode():
                for _ in range(3):
                    layer(volume)

        profile = forward_cost.profile_breakdown(forward, torch.device("cpu"))
        categories = profile["categories_ms"]
        assert categories["conv3d"] > 0 and categories["conv2d"] == 0
        assert categories["conv3d"] <= profile["forward_ms"]
        assert categories["rest"] >= 0


def test_route_comparison_reports_speed_peak_fraction_and_agreement():
    """--routes worker: eager and bf16 side by side on real frames; GMAC/s and the fraction of the measured peak
    follow from the MAC count, eager agrees with itself exactly, bf16 differs but stays close."""
    case = benchmark.measure_route_case("student_STMFNet", 64, 64, ["eager", "bf16"], repeats=1)
    routes = case["routes"]
    assert set(routes) == {"eager", "bf16"} and case["macs"] > 0
    assert case["peak_gmacs_per_s"]["float32"] > 0 and case["peak_gmacs_per_s"]["bfloat16"] > 0
    for route in routes.values():
        assert route["gmacs_per_s"] == pytest.approx(case["macs"] / route["forward_s"] / 1e9)
        assert route["fraction_of_fp32_peak"] == pytest.approx(
            route["gmacs_per_s"] / case["peak_gmacs_per_s"]["float32"])
    assert routes["eager"]["max_abs_diff"] == 0 and routes["eager"]["psnr_vs_fp32_db"] == math.inf
    assert 0 < routes["bf16"]["max_abs_diff"] and 20 < routes["bf16"]["psnr_vs_fp32_db"] < math.inf
    assert "eager" in benchmark.format_routes([case]) and "of fp32 peak" in benchmark.format_routes([case])


def test_json_never_replaces_the_timing_clip_or_an_existing_file(tmp_path, capsys):
    clip = benchmark.SAMPLE_CLIP.read_bytes()
    assert benchmark.main(["--sizes", "64x64", "--json", str(benchmark.SAMPLE_CLIP), "--overwrite"]) == 2
    assert "is the same file as (the timing clip)" in capsys.readouterr().err
    kept = tmp_path / "cost.json"
    kept.write_text("earlier results")
    assert benchmark.main(["--sizes", "64x64", "--json", str(kept)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert benchmark.SAMPLE_CLIP.read_bytes() == clip and kept.read_text() == "earlier results"
