"""ONNX export: the traceable op forms equal the ops, the exported graph is standard ONNX, and ONNX Runtime's
CPU provider reproduces the PyTorch model on real frames at two sizes (one not a multiple of 128)."""
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import evaluate
import export_onnx
import interpolate
import models
from cupy_module.adacof import FunctionAdaCoF, adacof_traceable
from cupy_module.correlation import correlation, correlation_traceable
from cupy_module.softsplat import _Splat, splat_traceable
from data.make_sample import build_sample
from deploy.backends import pytorch_interpolator
from deploy.onnx_export import INPUT_NAMES, OUTPUT_NAME, export_model
from deploy.onnx_runtime import OnnxInterpolator, choose_providers
from models.pwcnet import backwarp
from video.readers import read_video_frames

CLIP = Path(__file__).resolve().parents[1] / "assets" / "bbb_448x256.mp4"
PARITY_TOLERANCE = 1e-4


def _real_frames(height: int, width: int) -> list[torch.Tensor]:
    """Four consecutive frames of the shipped clip, cropped to height x width, as (1, 3, H, W) float32 in [0, 1]."""
    frames = read_video_frames(CLIP, max_frames=24)[20:24]
    return [torch.from_numpy(f[:height, :width].copy()).permute(2, 0, 1)[None].float() / 255 for f in frames]


def test_adacof_traceable_matches_goldens(kernel_goldens):
    """The gather form gives the original kernel's numbers, truncation and corner clamping included."""
    cases = [case for name, case in kernel_goldens.items() if name.startswith("adacof")]
    assert cases
    for case in cases:
        got = adacof_traceable(case["input"], case["weight"], case["offset_i"], case["offset_j"], case["dilation"])
        expected = case["output"]
        assert (got - expected).abs().max() <= 1e-12 * expected.abs().max().clamp_min(1)


def test_adacof_traceable_truncates_and_clamps():
    """Offsets across zero, beyond the frame and at both borders: float64 agreement with the CPU op."""
    generator = torch.Generator().manual_seed(0)
    frame = torch.rand(2, 3, 11, 13, generator=generator, dtype=torch.float64)
    weight = torch.rand(2, 9, 7, 9, generator=generator, dtype=torch.float64)
    offsets = [torch.randn(2, 9, 7, 9, generator=generator, dtype=torch.float64) * 6 for _ in range(2)]
    offsets[0][0, 0, 0, 0] = -0.5  # truncation gives 0 and a negative fraction (extrapolation)
    offsets[1][0, 0, 0, 0] = -30.0  # far outside: both corner columns clamp to 0
    expected = FunctionAdaCoF.apply(frame, weight, *offsets, 2)
    got = adacof_traceable(frame, weight, *offsets, 2)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)


def test_splat_and_correlation_traceable_match_ops():
    generator = torch.Generator().manual_seed(1)
    values = torch.rand(2, 4, 9, 10, generator=generator, dtype=torch.float64)
    flow = torch.randn(2, 2, 9, 10, generator=generator, dtype=torch.float64) * 4  # corners land outside too
    assert torch.allclose(splat_traceable(values, flow), _Splat.apply(values, flow), rtol=0, atol=1e-12)
    first, second = (torch.rand(1, 5, 8, 11, generator=generator, dtype=torch.float64) for _ in range(2))
    assert torch.allclose(correlation_traceable(first, second), correlation(first, second), rtol=0, atol=1e-12)


def test_traceable_ops_under_torch_compile_tracing(monkeypatch):
    """The ops switch to their traceable forms exactly when traced (torch.compile or export)."""
    generator = torch.Generator().manual_seed(2)
    frame = torch.rand(1, 3, 9, 9, generator=generator)
    weight, alpha, beta = (torch.rand(1, 25, 5, 5, generator=generator) for _ in range(3))
    from cupy_module import adacof as adacof_module

    calls = []
    monkeypatch.setattr(adacof_module, "adacof_traceable", lambda *args: calls.append(args) or args[1][:, :3])
    adacof_module.adacof(frame, weight, alpha, beta, 1)
    assert not calls
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    adacof_module.adacof(frame, weight, alpha, beta, 1)
    assert len(calls) == 1 and not calls[0][0].requires_grad


def test_choose_providers():
    cpu_only = ["AzureExecutionProvider", "CPUExecutionProvider"]
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("auto", cpu_only) == ["CPUExecutionProvider"]
    assert choose_providers("auto", gpu) == gpu
    assert choose_providers("cpu", gpu) == ["CPUExecutionProvider"]
    assert choose_providers("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"
    with pytest.raises(ValueError, match="onnxruntime-gpu"):
        choose_providers("cuda", cpu_only)


def _golden_model(name: str, golden_weights) -> torch.nn.Module:
    model = models.get_model_class(name)()
    model.load_state_dict(golden_weights.golden_state_dict(model.state_dict()))
    return model.eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["student_STMFNet", "STMFNet"])
def test_onnx_runtime_matches_pytorch_on_real_frames(name, golden_weights, tmp_path):
    """One export, run by ONNX Runtime's CPU provider at two sizes (the second not a multiple of 128, so the
    in-graph padding is exercised): within 1e-4 of the PyTorch model's float32 output."""
    model = _golden_model(name, golden_weights)
    path = tmp_path / f"{name}.onnx"
    proto = export_model(model, path)
    assert {opset.domain for opset in proto.opset_import} <= {"", "ai.onnx"}
    assert all(node.domain in ("", "ai.onnx") for node in proto.graph.node)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)

    session = OnnxInterpolator(path, device="cpu")
    for height, width in ((128, 256), (100, 172)):
        frames = _real_frames(height, width)
        with torch.no_grad():
            expected = model(*frames)
        got = session(*frames)
        assert got.shape == (1, 3, height, width)
        assert (got - expected).abs().max().item() <= PARITY_TOLERANCE


def _averaging_onnx(path: Path) -> Path:
    """A hand-made graph with export_onnx.py's interface that returns (I1 + I2) / 2, any batch and frame size."""
    from onnx import TensorProto, helper

    frames = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 3, "height", "width"])
              for name in INPUT_NAMES]
    output = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 3, "height", "width"])
    half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
    nodes = [helper.make_node("Add", ["I1", "I2"], ["sum"]), helper.make_node("Mul", ["sum", "half"], [OUTPUT_NAME])]
    graph = helper.make_graph(nodes, "average", frames, [output], initializer=[half])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _frame_folder(folder: Path, count: int = 3) -> Path:
    from PIL import Image

    folder.mkdir()
    for index, frame in enumerate(read_video_frames(CLIP, max_frames=count)):
        Image.fromarray(frame[:40, :56]).save(folder / f"{index:05d}.png")
    return folder


def test_interpolate_runs_an_onnx_model(tmp_path):
    """--backend onnxruntime feeds the four frames by name and writes what the graph returns."""
    model = _averaging_onnx(tmp_path / "average.onnx")
    folder = _frame_folder(tmp_path / "in")
    common = ["--input", str(folder), "--device", "cpu", "--scene_threshold", "off", "--static_threshold", "off"]
    interpolate.main([*common, "--backend", "onnxruntime", "--onnx", str(model), "--output", str(tmp_path / "ort")])
    interpolate.main([*common, "--baseline", "average", "--output", str(tmp_path / "average")])
    written = sorted((tmp_path / "ort").glob("*.png"))
    expected = sorted((tmp_path / "average").glob("*.png"))
    assert len(written) == len(expected) == 5
    for got, want in zip(written, expected):
        assert got.read_bytes() == want.read_bytes()


@pytest.mark.parametrize("flags, message", [
    (["--backend", "onnxruntime"], "needs --onnx"),
    (["--backend", "onnxruntime", "--onnx", "missing.onnx"], "not found"),
    (["--onnx", "model.onnx"], "only read with --backend onnxruntime"),
    (["--backend", "onnxruntime", "--onnx", "ONNX", "--precision", "bf16"], "apply to --backend pytorch only"),
])
def test_interpolate_backend_flag_errors(tmp_path, capsys, flags, message):
    folder = _frame_folder(tmp_path / "in", count=2)
    model = str(_averaging_onnx(tmp_path / "model.onnx"))
    flags = [model if flag == "ONNX" else flag for flag in flags]
    status = interpolate.main(["--input", str(folder), "--output", str(tmp_path / "out"), "--device", "cpu", *flags])
    assert status == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_export_onnx_refuses_bad_arguments(tmp_path, capsys):
    existing = tmp_path / "model.onnx"
    existing.write_bytes(b"keep me")
    for argv, message in (
        (["--out", str(tmp_path / "a.onnx")], "--checkpoint PATH is required"),
        (["--checkpoint", str(tmp_path / "none.pth"), "--out", str(tmp_path / "a.onnx")], "not found"),
        (["--allow_random", "--out", str(existing)], "exists"),
        (["--allow_random", "--out", str(tmp_path)], "is a folder"),
        (["--allow_random", "--opset", "13", "--out", str(tmp_path / "a.onnx")], "--opset must be 16"),
    ):
        status = export_onnx.main(argv)
        assert status == 2 and message in capsys.readouterr().err
    assert existing.read_bytes() == b"keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_bf16_route_runs_convolutions_in_bfloat16():
    """--precision bf16 really changes the arithmetic (convolutions in bfloat16) and stays close to float32."""
    torch.manual_seed(0)
    model = models.student_STMFNet().eval()
    frames = _real_frames(64, 64)
    with torch.no_grad():
        reference = model(*frames)
    got = pytorch_interpolator(model, "bf16")(*frames)
    assert got.dtype == torch.float32
    difference = (got - reference).abs().max().item()
    assert 0 < difference < 0.1 * reference.abs().max().item()


@pytest.mark.slow
def test_compiled_route_matches_eager_float32():
    """--compile (inductor) runs the whole student as one graph, the traced AdaCoF and the oneDNN 3D convolutions
    included, and keeps the eager float32 numbers to float rounding."""
    torch.manual_seed(0)
    model = models.student_STMFNet().eval()
    frames = _real_frames(64, 96)
    with torch.no_grad():
        assert torch._dynamo.explain(model)(*frames).graph_break_count == 0
        reference = model(*frames)
    got = pytorch_interpolator(model, "fp32", compile=True)(*frames)
    assert got.shape == reference.shape
    assert (got - reference).abs().max().item() <= 1e-5


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    build_sample(CLIP, root)
    return root


def test_evaluate_runs_an_onnx_model(tmp_path, sample_dir):
    """evaluate.py --backend onnxruntime scores what the graph returns and records the file it ran."""
    model = _averaging_onnx(tmp_path / "average.onnx")
    common = ["--data_dir", str(sample_dir), "--dataset", "Davis90_quintuplet", "--device", "cpu"]
    assert evaluate.main([*common, "--backend", "onnxruntime", "--onnx", str(model), "--out_dir",
                          str(tmp_path / "ort")]) == 0
    assert evaluate.main([*common, "--baseline", "average", "--out_dir", str(tmp_path / "average")]) == 0
    record, baseline = (json.loads((tmp_path / run / "Davis90_quintuplet" / "results.json").read_text())
                        for run in ("ort", "average"))
    assert record["backend"] == "onnxruntime" and record["onnx"] == str(model.resolve())
    assert record["onnx_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert [item["scores"] for item in record["items"]] == [item["scores"] for item in baseline["items"]]
    assert record["mean"]["PSNR"] == baseline["mean"]["PSNR"] > 20


@pytest.mark.parametrize("flags, message", [
    (["--backend", "onnxruntime"], "needs --onnx"),
    (["--backend", "onnxruntime", "--onnx", "missing.onnx"], "--onnx missing.onnx not found"),
    (["--onnx", "model.onnx"], "only read with --backend onnxruntime"),
    (["--backend", "onnxruntime", "--onnx", "ONNX", "--compile"], "apply to --backend pytorch only"),
])
def test_evaluate_backend_flag_errors(tmp_path, sample_dir, capsys, flags, message):
    model = str(_averaging_onnx(tmp_path / "model.onnx"))
    flags = [model if flag == "ONNX" else flag for flag in flags]
    status = evaluate.main(["--data_dir", str(sample_dir), "--dataset", "Davis90_quintuplet", "--device", "cpu",
                            "--out_dir", str(tmp_path / "out"), *flags])
    error = capsys.readouterr().err.strip()
    assert status != 0 and message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_pwc_backward_warp_keeps_frame_sizes_dynamic_in_onnx(tmp_path):
    """The teacher's backward warp builds its grid from the frame size: exported at one size, ONNX Runtime runs it
    at others (batch, height and width) within float rounding of PyTorch (the exported grid comes from arange, not
    linspace, so coordinates differ by an ulp: up to 1.2e-5 here)."""
    import onnxruntime

    class Warp(torch.nn.Module):
        def forward(self, frame, flow):
            return backwarp(frame, flow)

    dims = {0: "batch", 2: "height", 3: "width"}
    example = (torch.rand(1, 3, 32, 48), torch.randn(1, 2, 32, 48))
    program = torch.onnx.export(Warp(), example, input_names=["frame", "flow"], output_names=["warped"],
                                dynamic_shapes=(dims, dims), dynamo=True, optimize=False, opset_version=18)
    program.save(str(tmp_path / "warp.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "warp.onnx"), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    for batch, height, width in ((1, 32, 48), (2, 40, 24), (1, 57, 130)):
        frame = torch.rand(batch, 3, height, width, generator=generator)
        flow = 4 * torch.randn(batch, 2, height, width, generator=generator)
        (got,) = session.run(None, {"frame": frame.numpy(), "flow": flow.numpy()})
        assert got.shape == (batch, 3, height, width)
        assert np.abs(got - backwarp(frame, flow).numpy()).max() <= PARITY_TOLERANCE


def test_precision_check_spreads_its_windows_evenly_over_the_clip():
    from tools.precision_check import window_starts

    assert window_starts(132, 8) == [0, 18, 36, 54, 71, 89, 107, 125]
    assert window_starts(10, 8) == [0, 1, 2, 3]
