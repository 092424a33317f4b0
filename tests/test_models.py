"""Teacher (STMFNet) and student (student_STMFNet) against the original code's goldens and manifests.

Module goldens (modules.pt) cover the blocks defined in models/ besides the shared feature, GridNet and 3D U-Net
blocks (tests/test_blocks.py): kernel estimation, PWC-Net, backwarp, the teacher's metric, the 8-tap upsampler,
the Gaussian kernel and the frame normalisation. Model goldens (models.pt) are computed once per model and dtype
in module-scoped fixtures: the eval forward with its recorded intermediates, and one training forward with the
SSE and Laplacian losses and their gradients.

The float64 models are built under the float32 default dtype and converted with ``.double()``, so these tests
also check that nothing inside the forward falls back to the default dtype.
"""
import argparse
import json

import pytest
import torch

import models
from losses.laplacian import LaplacianLoss
from models.kernel_estimation import KernelEstimation
from models.pwcnet import Network, backwarp, load_pwc_weights, remap_state_dict
from models.scales import Upsampler_8tap, gaussian_kernel, pad_to_multiple
from models.stmfnet import Metric
from utility import gaussian_kernel as utility_gaussian_kernel
from utility import moduleNormalize

from conftest import MANIFEST_DIR, REFERENCE_DIR, relative_error, require_reference


MODEL_NAMES = ("STMFNet", "student_STMFNet")
FRAME_KEYS = ("I0", "I1", "I2", "I3")
# Reference README, section 7: float64 implementation vs float64 goldens.
F64 = dict(rtol=1e-7, atol=1e-9)
GRAD_RTOL_F64 = 1e-7
LOSS_RTOL_F64 = 1e-9
# float32 implementation vs float64 goldens.
F32 = dict(rtol=1e-4, atol=1e-4)


def assert_close64(got, expected):
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, **F64)


def golden_module(module, golden_weights, dtype=torch.float64):
    module = module.to(dtype)
    module.load_state_dict(golden_weights.golden_state_dict(module.state_dict()))
    return module.eval()


def set_float64_blur_kernel(model):
    """``.double()`` keeps the float32-rounded blur kernel; the goldens used a model built in float64."""
    with torch.no_grad():
        model.gauss_kernel.copy_(gaussian_kernel(5, 0.5, dtype=torch.float64).repeat(3, 1, 1, 1))
    return model


def golden_model(name, golden_weights):
    """float64 model with the golden weights."""
    return set_float64_blur_kernel(golden_module(models.get_model_class(name)(), golden_weights))


class CallRecorder:
    """Records the inputs and outputs of every call of the given submodules (forward hooks)."""

    def __init__(self, model, names):
        self.calls = {name: [] for name in names}
        modules = dict(model.named_modules())
        self.handles = [modules[name].register_forward_hook(self._hook(name)) for name in names]

    def _hook(self, name):
        def record(module, inputs, output):
            self.calls[name].append((inputs, output))

        return record

    def remove(self):
        for handle in self.handles:
            handle.remove()


# --------------------------------------------------------------------------------------------- manifests, config


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_manifest_in_the_repository_is_the_reference_one(name):
    reference = require_reference(REFERENCE_DIR / f"manifest_{name}.json")
    assert json.loads((MANIFEST_DIR / reference.name).read_text()) == json.loads(reference.read_text())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_state_dict_matches_manifest(name):
    manifest = json.loads((MANIFEST_DIR / f"manifest_{name}.json").read_text())
    model = models.get_model_class(name)()
    state_dict = model.state_dict()
    got = {key: (list(value.shape), str(value.dtype).removeprefix("torch.")) for key, value in state_dict.items()}
    expected = {entry["name"]: (entry["shape"], entry["dtype"]) for entry in manifest["entries"]}
    assert got == expected
    assert len(got) == manifest["num_entries"]

    parameters = list(model.parameters())
    trainable = [p for p in parameters if p.requires_grad]
    assert sum(p.numel() for p in trainable) == manifest["trainable_parameters"]
    assert sum(p.numel() for p in parameters) == manifest["total_parameters"]
    assert len(trainable) == manifest["trainable_parameter_tensors"]
    assert len(parameters) == manifest["total_parameter_tensors"]
    assert len(list(model.buffers())) == manifest["buffers"]
    frozen = sorted(key for key, p in model.named_parameters() if not p.requires_grad)
    assert frozen == sorted(manifest["frozen"])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_golden_weights_fingerprint(name, model_goldens, golden_weights):
    model = set_float64_blur_kernel(models.get_model_class(name)().double())
    got = golden_weights.golden_fingerprint(golden_weights.golden_state_dict(model.state_dict()))
    expected = model_goldens[name]["weights_fingerprint"]
    assert got.keys() == expected.keys()
    mismatched = [key for key in expected if got[key] != pytest.approx(expected[key], rel=1e-12, abs=1e-12)]
    assert not mismatched, f"torch's random stream differs from the goldens' for {mismatched[:5]}"


def test_construction_from_argparse_namespace_and_keywords():
    args = argparse.Namespace(
        featc=[64, 64, 96, 128], featnet="UMultiScaleResNext", featnorm="batch", kernel_size=3, dilation=2,
        finetune_pwc=False, lr=1e-3, gpu_id=0,  # unrelated script flags are ignored
    )
    student = models.student_STMFNet(args)
    assert student.config.kernel_size == 3 and student.config.dilation == 2
    assert student.feature_extractor.conv1.resnext_small.conv1.weight.shape[0] == 64
    assert student.get_kernel.moduleWeight1[0].in_channels == 64  # featc[0]
    assert student.get_kernel.moduleWeight1[4].out_channels == 9  # 3x3 kernels
    assert models.student_STMFNet(args, kernel_size=5).config.kernel_size == 5  # keyword overrides win
    with torch.no_grad():
        output = student.eval()(*[torch.rand(1, 3, 32, 48) for _ in range(4)])
    assert output.shape == (1, 3, 32, 48)

    with pytest.raises(TypeError, match="kernel_sise"):
        models.student_STMFNet(kernel_sise=3)
    with pytest.raises(ValueError, match="UMultiScaleResNext"):
        models.student_STMFNet(featnet="ResNet")
    with pytest.raises(ValueError, match="STMFNet, student_STMFNet"):
        models.get_model_class("stmfnet")
    assert models.get_model_class("STMFNet") is models.STMFNet


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_default_config_is_the_original_one(name, model_goldens):
    config = models.get_model_class(name)().config
    for key, value in model_goldens[name]["config"].items():
        assert getattr(config, key) == (tuple(value) if isinstance(value, list) else value), key


def test_finetune_pwc_unfreezes_flow_estimator():
    teacher = models.STMFNet(finetune_pwc=True)
    assert all(p.requires_grad for p in teacher.flow_estimator.parameters())
    assert not teacher.gauss_kernel.requires_grad and not teacher.upsampler.filter.requires_grad


# --------------------------------------------------------------------------------------------- module goldens


@pytest.mark.parametrize(
    "name, build",
    [
        ("kernel_estimation_teacher", lambda: KernelEstimation(5)),
        ("kernel_estimation_student", lambda: KernelEstimation(5, in_channels=32, channels=30)),
    ],
)
def test_kernel_estimation_golden(name, build, module_goldens, golden_weights):
    case = module_goldens[name]
    module = golden_module(build(), golden_weights)
    with torch.no_grad():
        outputs = module(case["inputs"]["features"])
    assert len(outputs) == len(case["outputs"]["outputs"]) == 18
    for got, expected in zip(outputs, case["outputs"]["outputs"]):
        assert_close64(got, expected)


def test_pwcnet_golden(module_goldens, golden_weights):
    case = module_goldens["pwcnet"]
    network = golden_module(Network(), golden_weights)
    first, second = case["inputs"]["I1"], case["inputs"]["I2"]
    with torch.no_grad():
        pyramids = network.extract_pyramid(first, second)
        flow = network(first, second, *pyramids)
        flow_own_pyramids = network(first, second)
    assert_close64(flow, case["outputs"]["flow"])
    torch.testing.assert_close(flow_own_pyramids, flow, rtol=0, atol=0)
    assert len(pyramids[0]) == len(case["outputs"]["pyramid_first"]) == 6
    for got, expected in zip(pyramids[0], case["outputs"]["pyramid_first"]):
        assert_close64(got, expected)


def test_pwcnet_loads_sniklaus_weights(tmp_path, golden_weights):
    network = golden_module(Network(), golden_weights)
    sniklaus_format = {key.replace("net", "module"): value for key, value in network.state_dict().items()}
    assert all(key.startswith("module") for key in sniklaus_format)
    assert remap_state_dict(sniklaus_format).keys() == network.state_dict().keys()
    path = tmp_path / "network-default.pytorch"
    torch.save(sniklaus_format, path)

    loaded = Network(weights_path=path).state_dict()
    for key, value in network.state_dict().items():
        torch.testing.assert_close(loaded[key], value.float(), rtol=0, atol=0)
    assert models.STMFNet(pwc_weights=str(path)).flow_estimator.netRefiner.netMain[0].weight.dtype == torch.float32



def test_pwcnet_refuses_mismatched_or_non_finite_weights(tmp_path):
    network = Network()
    sniklaus_format = {key.replace("net", "module"): value.clone() for key, value in network.state_dict().items()}
    before = {key: value.clone() for key, value in network.state_dict().items()}
    path = tmp_path / "network-default.pytorch"

    first_key = next(iter(sniklaus_format))
    torch.save({**sniklaus_format, "moduleExtra.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match=r"does not hold pytorch-pwc weights.*unexpected \(1\): netExtra\.weight"):
        load_pwc_weights(network, path)

    sniklaus_format[first_key][0] = float("nan")
    torch.save(sniklaus_format, path)
    non_finite_key = first_key.replace("module", "net")
    with pytest.raises(ValueError, match=r"NaN or infinite weights.*tensors \(1\): " + non_finite_key):
        load_pwc_weights(network, path)
    for key, value in network.state_dict().items():
        assert torch.equal(value, before[key])

def test_backwarp_golden(module_goldens):
    case = module_goldens["backwarp"]
    got = backwarp(case["inputs"]["tenInput"], case["inputs"]["tenFlow"])
    assert_close64(got, case["outputs"]["output"])


def test_metric_golden(module_goldens, golden_weights):
    case = module_goldens["metric_teacher"]
    metric = golden_module(Metric(), golden_weights)
    assert metric.paramScale.item() == -1.0
    with torch.no_grad():
        got = metric(case["inputs"]["tenFirst"], case["inputs"]["tenSecond"], case["inputs"]["tenFlow"])
    assert_close64(got, case["outputs"]["output"])


def test_upsampler_golden(module_goldens):
    case = module_goldens["upsampler"]
    upsampler = Upsampler_8tap().double()
    assert upsampler.filter.requires_grad is False
    got = upsampler(case["inputs"]["im"])
    assert_close64(got, case["outputs"]["output"])
    # Float32 upsampler on float32 input.
    got32 = Upsampler_8tap()(case["inputs"]["im"].float())
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), case["outputs"]["output"], **F32)


def test_gaussian_kernel_and_normalize_golden(module_goldens):
    case = module_goldens["gaussian_kernel"]
    got = utility_gaussian_kernel(case["inputs"]["sz"], case["inputs"]["sigma"], dtype=torch.float64)
    assert_close64(got, case["outputs"]["output"])
    assert gaussian_kernel(5, 0.5).dtype == torch.get_default_dtype()

    case = module_goldens["moduleNormalize"]
    assert_close64(moduleNormalize(case["inputs"]["frame"]), case["outputs"]["output"])


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 3), (64, 64), (65, 97), (72, 100), (128, 256)])
def test_pad_to_multiple_any_size(size):
    frame = torch.rand(1, 3, *size, dtype=torch.float64)
    padded = pad_to_multiple(frame, 128)
    height, width = -(-size[0] // 128) * 128, -(-size[1] // 128) * 128
    assert padded.shape == (1, 3, height, width)
    assert torch.equal(padded[..., : size[0], : size[1]], frame)
    if size[0] > height - size[0] and size[1] > width - size[1]:
        # Where one reflection suffices, this is exactly the original's reflect padding.
        pad = (0, width - size[1], 0, height - size[0])
        assert torch.equal(padded, torch.nn.functional.pad(frame, pad, mode="reflect"))
    if 1 < size[1] < width:
        # Sides smaller than the pad are mirrored again and again (numpy's "reflect").
        row = padded[0, 0, 0]
        assert torch.equal(row[size[1]], frame[0, 0, 0, size[1] - 2])


# --------------------------------------------------------------------------------------------- model goldens: eval


@pytest.fixture(scope="module", params=MODEL_NAMES)
def eval_run(request, model_goldens, golden_weights):
    """One float64 eval forward with golden weights, recording the submodule calls."""
    name = request.param
    model = golden_model(name, golden_weights)
    hooked = ["adacof", "upsampler", "scale_synthesis", "dyntex_generator"]
    if name == "STMFNet":
        hooked += ["flow_estimator", "metric", "softsplat"]
    recorder = CallRecorder(model, hooked)
    golden = model_goldens[name]["eval"]
    with torch.no_grad():
        output = model(*[golden["inputs"][key] for key in FRAME_KEYS])
    recorder.remove()
    return name, output, recorder.calls, golden


def test_eval_output_golden(eval_run):
    _, output, _, golden = eval_run
    assert isinstance(output, torch.Tensor)
    assert_close64(output, golden["output"])


def test_eval_intermediates_golden(eval_run):
    name, _, calls, golden = eval_run
    first_output = {hooked: outputs[0][1] for hooked, outputs in calls.items()}
    got = {
        "adacof_1": first_output["adacof"],  # the first AdaCoF call warps the padded I1 at full scale
        "output_tilde": first_output["scale_synthesis"][0],
        "dyntex": first_output["dyntex_generator"],
    }
    if name == "STMFNet":
        got["pwc_flow_1_to_2_raw"] = first_output["flow_estimator"]
        got["metric_1_to_2"] = first_output["metric"]
        got["softsplat_1"] = first_output["softsplat"]
    assert got.keys() == golden["intermediates"].keys()
    for key, expected in golden["intermediates"].items():
        assert_close64(got[key], expected)


def test_eval_internal_tensors_stay_float64(eval_run):
    """A float64 model built under the float32 default computes in float64 throughout."""
    assert torch.get_default_dtype() == torch.float32
    _, _, calls, golden = eval_run
    for hooked, records in calls.items():
        for inputs, output in records:
            tensors = [t for t in (*inputs, *(output if isinstance(output, list) else [output])) if torch.is_tensor(t)]
            assert all(t.dtype == torch.float64 for t in tensors), hooked
    offsets = [inputs[i] for inputs, _ in calls["adacof"] for i in (2, 3)]
    largest = max(float(offset.abs().max()) for offset in offsets)
    assert largest == pytest.approx(golden["max_abs_adacof_offset"], rel=1e-7)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_eval_float32_within_tolerance(name, model_goldens, golden_weights):
    model = golden_module(models.get_model_class(name)(), golden_weights, torch.float32)
    golden = model_goldens[name]["eval"]
    with torch.no_grad():
        output = model(*[golden["inputs"][key].float() for key in FRAME_KEYS])
    assert output.dtype == torch.float32
    torch.testing.assert_close(output.double(), golden["output"], **F32)


# --------------------------------------------------------------------------------------------- model goldens: train


@pytest.fixture(scope="module", params=MODEL_NAMES)
def train_run(request, model_goldens, golden_weights):
    """One float64 training forward; gradients of the SSE and of the Laplacian loss from the same graph.

    Only the recorded parameters are differentiated: a full float64 backward on CPU takes several times longer.
    """
    name = request.param
    model = golden_model(name, golden_weights).train()
    golden = model_goldens[name]["train"]
    result = model(*[golden["inputs"][key] for key in FRAME_KEYS])
    output, target = result["frame1"], golden["inputs"]["gt"]
    parameters = dict(model.named_parameters())
    recorded = list(golden["grads"])

    sse = 0.5 * ((output - target) ** 2).sum()
    grads_sse = torch.autograd.grad(sse, [parameters[key] for key in recorded], retain_graph=True)
    loss = LaplacianLoss()(output, target)
    grads = torch.autograd.grad(loss, [parameters[key] for key in recorded])
    buffers = dict(model.named_buffers())
    return dict(
        result=result,
        golden=golden,
        sse=sse.detach(),
        loss=loss.detach(),
        grads_sse=dict(zip(recorded, grads_sse)),
        grads=dict(zip(recorded, grads)),
        bn_buffers={key: buffers[key] for key in golden["bn_buffers_after"]},
    )


def test_train_output_and_losses_golden(train_run):
    golden = train_run["golden"]
    assert isinstance(train_run["result"], dict) and list(train_run["result"]) == ["frame1"]
    assert_close64(train_run["result"]["frame1"].detach(), golden["output_frame1"])
    assert relative_error(train_run["sse"], golden["sse"]) <= LOSS_RTOL_F64
    assert relative_error(train_run["loss"], golden["loss"]) <= LOSS_RTOL_F64


@pytest.mark.parametrize("loss", ["grads_sse", "grads"])
def test_train_gradients_golden(train_run, loss):
    expected = train_run["golden"][loss]
    assert train_run[loss].keys() == expected.keys()
    for key, value in expected.items():
        assert relative_error(train_run[loss][key], value) <= GRAD_RTOL_F64, key


def test_train_batchnorm_buffers_golden(train_run):
    for key, expected in train_run["golden"]["bn_buffers_after"].items():
        got = train_run["bn_buffers"][key]
        if expected.is_floating_point():
            assert_close64(got, expected)
        else:
            assert torch.equal(got, expected), key


# With outrow=(1,) the GridNet's top row (2x scale) never reaches the output after the turning column, exactly as
# in the original, so these blocks get no gradient.
GRIDNET_UNUSED = ("scale_synthesis.lateral_0_2.", "scale_synthesis.lateral_0_3.", "scale_synthesis.up_0_")


def test_student_gradients_reach_every_trainable_parameter():
    torch.manual_seed(0)
    model = models.student_STMFNet().train()
    frames = [torch.rand(1, 3, 48, 80) for _ in range(5)]
    output = model(*frames[:4])["frame1"]
    LaplacianLoss()(output, frames[4]).backward()
    for key, parameter in model.named_parameters():
        if not parameter.requires_grad:
            assert key in ("gauss_kernel", "upsampler.filter")
        elif key.startswith(GRIDNET_UNUSED):
            assert parameter.grad is None, key
        else:
            # Connected to the loss (a value may still be 0, e.g. behind a ReLU that is off for this input).
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), key


def test_gridnet_does_not_run_the_blocks_that_cannot_reach_its_output():
    """The blocks of GRIDNET_UNUSED are not run at all (their output is unused; the goldens hold the rest)."""
    torch.manual_seed(0)
    grid = models.student_STMFNet().scale_synthesis.eval()
    ran = set()
    for name, block in grid.named_children():
        block.register_forward_hook(lambda module, inputs, output, name=name: ran.add(name))
    with torch.no_grad():
        grid(torch.rand(1, 6, 32, 32), torch.rand(1, 6, 16, 16), torch.rand(1, 6, 8, 8))
    skipped = {name for name, _ in grid.named_children()} - ran
    assert skipped == {"lateral_0_2", "lateral_0_3", "up_0_0", "up_0_1"}
    assert all(f"scale_synthesis.{name}.".startswith(GRIDNET_UNUSED) for name in skipped)


# --------------------------------------------------------------------------------------------- sizes and errors


@pytest.mark.parametrize("name, size", [("student_STMFNet", (65, 97)), ("student_STMFNet", (130, 250)),
                                        ("STMFNet", (40, 64)), ("student_STMFNet", (17, 9))])
def test_output_has_input_size(name, size):
    torch.manual_seed(0)
    model = models.get_model_class(name)().eval()
    frames = [torch.rand(1, 3, *size) for _ in range(4)]
    with torch.no_grad():
        output = model(*frames)
    assert output.shape == (1, 3, *size)
    assert torch.isfinite(output).all()


def test_mismatched_frame_sizes_raise_value_error():
    model = models.student_STMFNet().eval()
    frames = [torch.rand(1, 3, 64, 64) for _ in range(3)] + [torch.rand(1, 3, 64, 72)]
    with pytest.raises(ValueError, match=r"\(1, 3, 64, 72\)"):
        model(*frames)
