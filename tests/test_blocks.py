"""Golden tests of the shared building blocks: feature extractor, GridNet and 3D texture U-Net.

Each block is compared with the output of the original code (modules.pt) under the
deterministic golden weights, in float64 (tight) and float32 (loose), and its state-dict
layout is compared with the matching part of the full-model manifests.
"""
import json

import pytest
import torch

from models.feature import FEATURE_NETWORKS, UMultiScaleResNext
from models.gridnet import MIMOGridNet
from models.texture import UNet3d_18, student_UNet3d_18

from conftest import MANIFEST_DIR, relative_error

# golden key -> (builder, manifest file, state-dict prefix inside the full model)
BLOCKS = {
    "feature_teacher": (
        lambda: UMultiScaleResNext(channels=[64, 128, 256, 512], norm_layer="batch"),
        "manifest_STMFNet.json",
        "feature_extractor.",
    ),
    "feature_student": (
        lambda: UMultiScaleResNext(channels=[32, 64, 96, 128], norm_layer="batch"),
        "manifest_student_STMFNet.json",
        "feature_extractor.",
    ),
    "gridnet_teacher": (
        lambda: MIMOGridNet((6, 12, 6), (3,), grid_chs=(32, 64, 96), n_row=3, n_col=4, outrow=(1,)),
        "manifest_STMFNet.json",
        "scale_synthesis.",
    ),
    "gridnet_student": (
        lambda: MIMOGridNet((6, 6, 6), (3,), grid_chs=(16, 32, 46), n_row=3, n_col=4, outrow=(1,)),
        "manifest_student_STMFNet.json",
        "scale_synthesis.",
    ),
    "unet3d_teacher": (lambda: UNet3d_18(bn="batch"), "manifest_STMFNet.json", "dyntex_generator."),
    "unet3d_student": (lambda: student_UNet3d_18(bn="batch"), "manifest_student_STMFNet.json", "dyntex_generator."),
}


def _golden_module(name, golden_weights, dtype):
    module = BLOCKS[name][0]().to(dtype)
    module.load_state_dict(golden_weights.golden_state_dict(module.state_dict()))
    return module.eval()


def _run(module, inputs, dtype):
    with torch.no_grad():
        out = module(*[x.to(dtype) for x in inputs.values()])
    return out[0] if isinstance(out, list) else out


@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_matches_golden_float64(name, module_goldens, golden_weights):
    case = module_goldens[name]
    got = _run(_golden_module(name, golden_weights, torch.float64), case["inputs"], torch.float64)
    torch.testing.assert_close(got, case["outputs"]["output"], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_matches_golden_float32(name, module_goldens, golden_weights):
    case = module_goldens[name]
    got = _run(_golden_module(name, golden_weights, torch.float32), case["inputs"], torch.float32)
    assert got.dtype == torch.float32
    expected = case["outputs"]["output"]
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-4)
    assert relative_error(got, expected) < 1e-5


@pytest.mark.parametrize("name", list(BLOCKS))
def test_state_dict_layout_matches_manifest(name):
    builder, manifest_file, prefix = BLOCKS[name]
    entries = json.loads((MANIFEST_DIR / manifest_file).read_text())["entries"]
    expected = [(e["name"][len(prefix):], e["shape"], e["dtype"]) for e in entries if e["name"].startswith(prefix)]
    state = builder().state_dict()
    got = [(key, list(value.shape), str(value.dtype).removeprefix("torch.")) for key, value in state.items()]
    assert expected and got == expected


def test_feature_network_table():
    assert FEATURE_NETWORKS["UMultiScaleResNext"] is UMultiScaleResNext


def test_identity_norms_have_no_norm_state_and_run():
    frames = [torch.rand(1, 3, 16, 16) for _ in range(5)]
    feature = UMultiScaleResNext(channels=[32, 64, 96, 128], norm_layer="identity")
    texture = student_UNet3d_18(bn=False)
    for module in (feature, texture):
        assert not any("running_mean" in key for key in module.state_dict())
    assert feature(frames[0], frames[1]).shape == (1, 32, 8, 8)
    out = texture(*frames)
    assert out.shape == (1, 3, 16, 16) and torch.isfinite(out).all()


def test_texture_unet_trains():
    """Train-mode forward and backward reach every parameter (BatchNorm in batch-statistics mode)."""
    module = UNet3d_18(bn="batch").train()
    frames = [torch.rand(2, 3, 16, 24, requires_grad=True) for _ in range(5)]
    module(*frames).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())
    assert all(f.grad is not None for f in frames)


def test_feature_network_rejects_bad_norms_and_sizes():
    with pytest.raises(ValueError, match="norm_layer"):
        UMultiScaleResNext(norm_layer="group")
    with pytest.raises(ValueError, match="multiples of 16"):
        UMultiScaleResNext(channels=[32, 64, 96, 128])(torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24))


def test_gridnet_needs_one_input_per_row():
    with pytest.raises(ValueError, match="one input per row"):
        MIMOGridNet((6, 6, 6), (3,), grid_chs=(16, 32, 46), n_col=4, outrow=(1,))(torch.rand(1, 6, 8, 8))
    with pytest.raises(ValueError, match="per row"):
        MIMOGridNet((6, 6), (3,), grid_chs=(16, 32, 46))


def test_texture_network_needs_five_frames_of_one_size():
    with pytest.raises(ValueError, match="five frames"):
        student_UNet3d_18()(*[torch.rand(1, 3, 16, 16)] * 4, torch.rand(1, 3, 16, 24))
