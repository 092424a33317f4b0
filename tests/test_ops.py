"""The three custom ops against the original's goldens, autograd, invariants and input checks.

Every golden and gradient test runs twice: through the pure-PyTorch CPU path and through the CUDA kernel source
compiled for the CPU (tests/cuda_emulation.py), so the CuPy kernels' arithmetic is checked without a GPU.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import relative_error
from cupy_module import adacof as adacof_module
from cupy_module import correlation as correlation_module
from cupy_module import softsplat as softsplat_module
from cupy_module.adacof import FunctionAdaCoF, adacof
from cupy_module.correlation import FunctionCorrelation, ModuleCorrelation, correlation
from cupy_module.softsplat import FunctionSoftsplat, ModuleSoftsplat, softsplat
from cuda_emulation import compiler_available, emulated_launch

OP_MODULES = (adacof_module, softsplat_module, correlation_module)


@pytest.fixture(params=["torch", "cuda_source"])
def path(request, monkeypatch):
    """Which implementation the ops run: the CPU path, or the CUDA kernels emulated on the CPU."""
    if request.param == "cuda_source":
        if not compiler_available():
            pytest.skip("no C++ compiler to build the CUDA kernel sources for the CPU")
        for module in OP_MODULES:
            monkeypatch.setattr(module, "use_cuda_kernel", lambda tensor: True)
            monkeypatch.setattr(module, "launch", emulated_launch)
    return request.param


def _assert_golden(got, expected, dtype):
    """The reference README's tolerances: float64 assert_close(1e-7, 1e-9); float32 2e-4 * max(1, max|exp|)."""
    assert got.shape == expected.shape
    if dtype == torch.float64:
        torch.testing.assert_close(got.detach(), expected, rtol=1e-7, atol=1e-9)
    else:
        bound = 2e-4 * max(1.0, float(expected.abs().max()))
        assert float((got.detach().double() - expected).abs().max()) <= bound


def _leaves(case, names, dtype):
    return {name: case[name].to(dtype).clone().requires_grad_() for name in names}


CASES = {
    "adacof": ["adacof_k5_d1_softmax", "adacof_k5_d1_arbitrary", "adacof_k5_d2_softmax", "adacof_k5_d2_arbitrary",
               "adacof_k3_d1_softmax", "adacof_k3_d1_arbitrary"],
    "softsplat": ["softsplat_summation", "softsplat_average", "softsplat_linear", "softsplat_softmax"],
    "correlation": ["correlation_0", "correlation_1"],
}
DTYPES = [torch.float64, torch.float32]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("name", CASES["adacof"])
def test_adacof_golden(kernel_goldens, name, dtype, path):
    case = kernel_goldens[name]
    inputs = _leaves(case, ["input", "weight", "offset_i", "offset_j"], dtype)
    output = FunctionAdaCoF.apply(inputs["input"], inputs["weight"], inputs["offset_i"], inputs["offset_j"],
                                  case["dilation"])
    _assert_golden(output, case["output"], dtype)
    output.backward(case["grad_output"].to(dtype))
    for name_ in ("weight", "offset_i", "offset_j"):
        _assert_golden(inputs[name_].grad, case["grad_" + name_], dtype)
    # The original never writes the frame's gradient (all zeros); we pass none at all.
    assert not case["grad_input"].any()
    assert inputs["input"].grad is None


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("name", CASES["softsplat"])
def test_softsplat_golden(kernel_goldens, name, dtype, path):
    case = kernel_goldens[name]
    names = ["input", "flow"] + (["metric"] if "metric" in case else [])
    inputs = _leaves(case, names, dtype)
    output = FunctionSoftsplat(inputs["input"], inputs["flow"], inputs.get("metric"), case["mode"])
    _assert_golden(output, case["output"], dtype)
    output.backward(case["grad_output"].to(dtype))
    for name_ in names:
        _assert_golden(inputs[name_].grad, case["grad_" + name_], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("name", CASES["correlation"])
def test_correlation_golden(kernel_goldens, name, dtype, path):
    case = kernel_goldens[name]
    inputs = _leaves(case, ["first", "second"], dtype)
    output = FunctionCorrelation(inputs["first"], inputs["second"])
    _assert_golden(output, case["output"], dtype)
    output.backward(case["grad_output"].to(dtype))
    for name_ in ("first", "second"):
        _assert_golden(inputs[name_].grad, case["grad_" + name_], dtype)


def test_float64_goldens_are_matched_to_rounding(kernel_goldens):
    """Tighter than the README's tolerance: the CPU path reproduces every kernel golden to ~1e-15."""
    case = kernel_goldens["adacof_k5_d2_arbitrary"]
    output = adacof(case["input"], case["weight"], case["offset_i"], case["offset_j"], case["dilation"])
    assert relative_error(output, case["output"]) < 1e-14


# ----------------------------------------------------------------------------------------------- gradcheck

def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_adacof_gradcheck(path):
    """Away from the truncation discontinuities and with 3 channels the original backward is the true gradient."""
    g = _generator(1)
    batch, kernel_size, dilation, height, width = 2, 3, 2, 4, 5
    border = (kernel_size - 1) * dilation
    frame = torch.rand(batch, 3, height + border, width + border, generator=g, dtype=torch.float64)
    weight = torch.rand(batch, kernel_size**2, height, width, generator=g, dtype=torch.float64)
    # Fractions in [0.2, 0.8] plus whole numbers from -2 to 2: far from integer steps, some clamped at the border.
    whole = torch.randint(-2, 3, (2, batch, kernel_size**2, height, width), generator=g).double()
    fraction = 0.2 + 0.6 * torch.rand(2, batch, kernel_size**2, height, width, generator=g, dtype=torch.float64)
    offset_i, offset_j = (whole + fraction.copysign(whole + 0.5)).unbind(0)
    args = (weight.requires_grad_(), offset_i.requires_grad_(), offset_j.requires_grad_())
    assert torch.autograd.gradcheck(lambda w, oi, oj: adacof(frame, w, oi, oj, dilation), args)


@pytest.mark.parametrize("mode", ["summation", "average", "linear", "softmax"])
def test_softsplat_gradcheck(mode, path):
    g = _generator(2)
    inputs = torch.rand(2, 3, 5, 6, generator=g, dtype=torch.float64)
    flow = 3 * torch.rand(2, 2, 5, 6, generator=g, dtype=torch.float64) - 1.5
    metric = torch.rand(2, 1, 5, 6, generator=g, dtype=torch.float64) + 0.1
    args = [inputs.requires_grad_(), flow.requires_grad_(), metric.requires_grad_()]
    assert torch.autograd.gradcheck(lambda i, f, m: softsplat(i, f, m, mode), args)


def test_correlation_gradcheck(path):
    g = _generator(3)
    first = torch.randn(1, 3, 6, 11, generator=g, dtype=torch.float64, requires_grad=True)
    second = torch.randn(1, 3, 6, 11, generator=g, dtype=torch.float64, requires_grad=True)
    # fast_mode: 81 output channels make the full Jacobian slow to build on the CPU path.
    assert torch.autograd.gradcheck(correlation, (first, second), fast_mode=True)


# ----------------------------------------------------------------------------------------------- invariants

@pytest.mark.parametrize("mode", ["summation", "average", "linear", "softmax"])
def test_softsplat_zero_flow_is_identity(mode, path):
    image = torch.rand(2, 3, 7, 9, generator=_generator(4), dtype=torch.float64)
    metric = torch.randn(2, 1, 7, 9, generator=_generator(5), dtype=torch.float64)
    if mode == "linear":
        metric = metric.abs() + 0.1
    output = softsplat(image, torch.zeros(2, 2, 7, 9, dtype=torch.float64), metric, mode)
    torch.testing.assert_close(output, image, rtol=1e-14, atol=1e-14)


def test_softsplat_integer_shift_moves_pixels_and_drops_outside(path):
    image = torch.rand(1, 2, 5, 6, generator=_generator(6), dtype=torch.float64)
    flow = torch.zeros(1, 2, 5, 6, dtype=torch.float64)
    flow[:, 0] = 2  # two pixels to the right
    flow[:, 1] = -1  # one pixel up
    output = softsplat(image, flow, None, "average")
    torch.testing.assert_close(output[:, :, :4, 2:], image[:, :, 1:, :4])
    # Pixels nothing lands on have a zero normaliser, replaced by one: they come out as zero.
    assert not output[:, :, 4:].any() and not output[:, :, :, :2].any()


@pytest.mark.parametrize("kernel_size,dilation", [(5, 1), (3, 2)])
def test_adacof_one_hot_weights_give_shifted_crop(kernel_size, dilation, path):
    height, width = 6, 7
    border = (kernel_size - 1) * dilation
    frame = torch.rand(2, 3, height + border, width + border, generator=_generator(7), dtype=torch.float64)
    zeros = torch.zeros(2, kernel_size**2, height, width, dtype=torch.float64)
    for tap in (0, kernel_size + 1, kernel_size**2 - 1):
        weight = zeros.clone()
        weight[:, tap] = 1
        row, col = (tap // kernel_size) * dilation, (tap % kernel_size) * dilation
        output = adacof(frame, weight, zeros, zeros, dilation)
        torch.testing.assert_close(output, frame[:, :, row:row + height, col:col + width], rtol=0, atol=0)


def test_adacof_truncates_toward_zero(path):
    """Offset -0.25 keeps the integer part 0 and extrapolates from pixels p and p+1 (floor would use p-1, p)."""
    frame = torch.tensor([0.0, 1.0, 4.0, 9.0], dtype=torch.float64).view(1, 1, 1, 4).expand(1, 3, 1, 4)
    weight = torch.ones(1, 1, 1, 4, dtype=torch.float64)
    offset_i = torch.zeros_like(weight)
    offset_j = torch.full_like(weight, -0.25)
    output = adacof(frame.contiguous(), weight, offset_i, offset_j, 1)
    expected = torch.tensor([0.0 - 0.25 * 1.0, 1.0 - 0.25 * 3.0, 4.0 - 0.25 * 5.0, 9.0 - 0.25 * 0.0],
                            dtype=torch.float64)
    torch.testing.assert_close(output[0, 0, 0], expected)


def test_correlation_of_unit_vectors_with_itself_peaks_at_centre(path):
    features = torch.randn(2, 6, 8, 10, generator=_generator(8), dtype=torch.float64)
    features = features / features.norm(dim=1, keepdim=True)
    volume = correlation(features, features)
    assert volume.shape == (2, 81, 8, 10)
    torch.testing.assert_close(volume[:, 40], torch.full((2, 8, 10), 1 / 6, dtype=torch.float64))
    assert (volume.argmax(dim=1) == 40).all()


def test_correlation_known_shift(path):
    first = torch.randn(1, 3, 9, 9, generator=_generator(9), dtype=torch.float64)
    second = torch.roll(first, shifts=(1, -2), dims=(2, 3))  # content moves down 1, left 2: dy=1, dx=-2
    volume = correlation(first, second)
    channel = (1 + 4) * 9 + (-2 + 4)
    torch.testing.assert_close(volume[0, channel, 2:7, 2:7], first[0, :, 2:7, 2:7].pow(2).mean(0))


def test_modules_match_functions():
    image = torch.rand(1, 3, 6, 7, generator=_generator(10))
    flow = torch.randn(1, 2, 6, 7, generator=_generator(11))
    metric = torch.randn(1, 1, 6, 7, generator=_generator(12))
    torch.testing.assert_close(ModuleSoftsplat("softmax")(image, flow, metric), softsplat(image, flow, metric,
                                                                                         "softmax"))
    torch.testing.assert_close(ModuleCorrelation()(image, image.flip(3)), correlation(image, image.flip(3)))


def test_adacof_cpu_result_does_not_depend_on_memory_layout():
    """Channels-last kernels (the models' float32 CPU inference layout) give bit-identical values and gradients."""
    g = _generator(15)
    frame = torch.rand(2, 3, 12, 13, generator=g, dtype=torch.float64)
    tensors = [torch.rand(2, 25, 8, 9, generator=g, dtype=torch.float64)]
    tensors += [3 * torch.randn(2, 25, 8, 9, generator=g, dtype=torch.float64) for _ in range(2)]
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        inputs = [t.contiguous(memory_format=layout).requires_grad_() for t in tensors]
        output = adacof(frame.contiguous(memory_format=layout), *inputs, 1)
        grads = torch.autograd.grad((output * torch.arange(3.0, dtype=output.dtype).view(1, 3, 1, 1)).sum(), inputs)
        results.append((output, *grads))
    for got, expected in zip(*results):
        assert torch.equal(got, expected)


def test_non_contiguous_inputs_are_accepted():
    g = _generator(13)
    frame = torch.rand(1, 3, 10, 12, generator=g).transpose(2, 3).contiguous().transpose(2, 3)
    weight = torch.rand(1, 25, 6, 8, generator=g).transpose(2, 3).contiguous().transpose(2, 3)
    offsets = torch.randn(1, 25, 6, 8, generator=g)
    assert not frame.is_contiguous() and not weight.is_contiguous()
    torch.testing.assert_close(adacof(frame, weight, offsets, offsets, 1),
                               adacof(frame.contiguous(), weight.contiguous(), offsets, offsets, 1))


def test_adacof_banded_cpu_path_equals_single_band(monkeypatch):
    """The memory-bounded CPU path gives the same numbers however the rows are split into bands."""
    g = _generator(14)
    frame = torch.rand(2, 3, 12, 13, generator=g, dtype=torch.float64)
    weight = torch.rand(2, 25, 8, 9, generator=g, dtype=torch.float64, requires_grad=True)
    offset = (3 * torch.randn(2, 25, 8, 9, generator=g, dtype=torch.float64)).requires_grad_()
    whole = adacof(frame, weight, offset, offset.flip(1), 1)
    grads = torch.autograd.grad(whole.sum(), (weight, offset))
    monkeypatch.setattr(adacof_module, "_CPU_BAND_TAPS", 1)  # one row at a time
    chunked = adacof(frame, weight, offset, offset.flip(1), 1)
    torch.testing.assert_close(chunked, whole, rtol=1e-15, atol=1e-15)
    for got, expected in zip(torch.autograd.grad(chunked.sum(), (weight, offset)), grads):
        torch.testing.assert_close(got, expected, rtol=1e-15, atol=1e-15)


def test_adacof_empty_output_on_cpu():
    """A frame with no output rows, no output columns or no batch items gives empty results, not an error."""
    for batch, height, width in ((1, 0, 5), (1, 5, 0), (0, 5, 5)):
        taps = torch.rand(batch, 25, height, width, requires_grad=True)
        output = adacof(torch.rand(batch, 3, height + 4, width + 4), taps, taps, taps, 1)
        assert output.shape == (batch, 3, height, width)
        output.sum().backward()
        assert taps.grad.shape == taps.shape


# ----------------------------------------------------------------------------------------------- bad input

def test_adacof_rejects_bad_shapes():
    frame = torch.rand(1, 3, 12, 12)
    taps = torch.rand(1, 25, 8, 8)
    with pytest.raises(ValueError, match=r"padded to .*12x12"):
        adacof(torch.rand(1, 3, 11, 12), taps, taps, taps, 1)
    with pytest.raises(ValueError, match="not F\\*F"):
        adacof(frame, torch.rand(1, 24, 8, 8), torch.rand(1, 24, 8, 8), torch.rand(1, 24, 8, 8), 1)
    with pytest.raises(ValueError, match="same shape"):
        adacof(frame, taps, taps, torch.rand(1, 25, 8, 7), 1)
    with pytest.raises(ValueError, match="batch sizes differ"):
        adacof(torch.rand(2, 3, 12, 12), taps, taps, taps, 1)
    with pytest.raises(ValueError, match="4-D"):
        adacof(frame[0], taps, taps, taps, 1)
    with pytest.raises(ValueError, match="dilation"):
        adacof(frame, taps, taps, taps, 0)
    with pytest.raises(ValueError, match="float64 but frame is torch.float32"):
        adacof(frame, taps, taps, taps.double(), 1)
    with pytest.raises(ValueError, match="float32 or float64"):
        adacof(frame.half(), taps.half(), taps.half(), taps.half(), 1)


def test_softsplat_rejects_bad_input():
    image, flow, metric = torch.rand(1, 3, 5, 6), torch.rand(1, 2, 5, 6), torch.rand(1, 1, 5, 6)
    with pytest.raises(ValueError, match="mode must be one of"):
        softsplat(image, flow, metric, "max")
    with pytest.raises(ValueError, match="needs a metric"):
        softsplat(image, flow, None, "softmax")
    with pytest.raises(ValueError, match=r"flow \(1, 3, 5, 6\) must be \(B, 2, H, W\)"):
        softsplat(image, torch.rand(1, 3, 5, 6), metric, "softmax")
    with pytest.raises(ValueError, match="metric .* must be"):
        softsplat(image, flow, torch.rand(1, 2, 5, 6), "linear")
    with pytest.raises(ValueError, match="batch sizes differ"):
        softsplat(image, torch.rand(2, 2, 5, 6), None, "average")
    with pytest.raises(ValueError, match="mode must be one of"):
        ModuleSoftsplat("mean")


def test_correlation_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        correlation(torch.rand(1, 4, 6, 7), torch.rand(1, 5, 6, 7))
    with pytest.raises(ValueError, match="4-D"):
        correlation(torch.rand(4, 6, 7), torch.rand(4, 6, 7))


@pytest.mark.slow
def test_adacof_cpu_forward_memory_at_1080p():
    """A 1920x1088 AdaCoF forward (F=5) needs little beyond its inputs and output (issue #2 allowed ~2 GB; the
    sparse-product forward measured about 70 MiB), and its fresh process prints no warning (the CPU path builds sparse
    CSR matrices, about which PyTorch warns unless told)."""
    script = Path(__file__).resolve().parents[1] / "tools" / "measure_ops.py"
    result = subprocess.run([sys.executable, str(script), "--memory_only", "--memory_size", "1088x1920"],
                            check=True, capture_output=True, text=True)
    measured = json.loads(result.stdout)
    assert measured["size"] == "1088x1920"
    assert 0 < measured["extra_bytes"] <= 512 * 2**20
    assert "Warning" not in result.stderr, result.stderr


def test_ops_run_in_float32_under_autocast():
    """Under autocast (CUDA float16 with --fp16, here CPU bfloat16) the ops cast their inputs to float32."""
    g = _generator(15)
    frame = torch.rand(1, 3, 12, 13, generator=g)
    weight = torch.rand(1, 25, 8, 9, generator=g).bfloat16().requires_grad_()
    offset = torch.randn(1, 25, 8, 9, generator=g)
    image, flow = torch.rand(1, 3, 6, 7, generator=g).bfloat16(), torch.randn(1, 2, 6, 7, generator=g)
    metric = torch.randn(1, 1, 6, 7, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        warped = adacof(frame, weight, offset, offset, 1)
        splatted = softsplat(image, flow, metric, "softmax")
        volume = correlation(image, flow[:, :1].expand(1, 3, 6, 7))
    assert warped.dtype == splatted.dtype == volume.dtype == torch.float32
    torch.testing.assert_close(warped, adacof(frame, weight.float(), offset, offset, 1))
    torch.testing.assert_close(splatted, softsplat(image.float(), flow, metric, "softmax"))
    warped.sum().backward()
    assert weight.grad.dtype == torch.bfloat16 and torch.isfinite(weight.grad.float()).all()
