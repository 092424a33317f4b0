"""``models.checkpoint.load_checkpoint``: the original checkpoint format, DataParallel prefixes, and clear failures."""
import pytest
import torch

import models
from models.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def golden_student_state(golden_weights):
    """The student's state dict with the golden weights, as the original training code would save it (float32)."""
    return golden_weights.golden_state_dict(models.student_STMFNet().state_dict())


def assert_state_equal(model, state_dict):
    loaded = model.state_dict()
    assert loaded.keys() == state_dict.keys()
    for key, value in state_dict.items():
        assert torch.equal(loaded[key], value), key


def test_loads_original_training_checkpoint(tmp_path, golden_student_state):
    path = tmp_path / "model_epoch070.pth"
    torch.save({"epoch": 70, "state_dict": golden_student_state}, path)  # trainers/*.py save_checkpoint format
    model = models.student_STMFNet()
    checkpoint = load_checkpoint(model, path)
    assert checkpoint["epoch"] == 70
    assert_state_equal(model, golden_student_state)


def test_loads_bare_and_data_parallel_state_dicts(tmp_path, golden_student_state):
    bare = tmp_path / "bare.pth"
    torch.save(golden_student_state, bare)
    model = models.student_STMFNet()
    load_checkpoint(model, bare)
    assert_state_equal(model, golden_student_state)

    prefixed = tmp_path / "data_parallel.pth"
    torch.save({"state_dict": {f"module.{key}": value for key, value in golden_student_state.items()}}, prefixed)
    model = models.student_STMFNet()
    load_checkpoint(model, prefixed, map_location=torch.device("cpu"))
    assert_state_equal(model, golden_student_state)


def test_loads_into_float64_model(tmp_path, golden_student_state):
    path = tmp_path / "model.pth"
    torch.save({"state_dict": golden_student_state}, path)
    model = models.student_STMFNet().double()
    load_checkpoint(model, path)
    weight = model.state_dict()["get_kernel.moduleAlpha1.7.weight"]
    assert weight.dtype == torch.float64
    assert torch.equal(weight, golden_student_state["get_kernel.moduleAlpha1.7.weight"].double())


def test_wrong_architecture_lists_keys_and_loads_nothing(tmp_path, golden_student_state):
    path = tmp_path / "student.pth"
    torch.save({"state_dict": golden_student_state}, path)
    teacher = models.STMFNet()
    before = {key: value.clone() for key, value in teacher.state_dict().items()}
    with pytest.raises(ValueError) as error:
        load_checkpoint(teacher, path)
    message = str(error.value)
    assert "missing" in message and "flow_estimator." in message
    assert "misshaped" in message and "feature_extractor." in message
    assert "nothing was loaded" in message
    assert_state_equal(teacher, before)


def test_unexpected_and_misshaped_keys(tmp_path, golden_student_state):
    state = dict(golden_student_state)
    state["extra.weight"] = torch.zeros(1)
    state["get_kernel.moduleBeta2_ds.4.bias"] = torch.zeros(7)
    path = tmp_path / "edited.pth"
    torch.save({"state_dict": state}, path)
    model = models.student_STMFNet()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"unexpected \(1\): extra\.weight") as error:
        load_checkpoint(model, path)
    assert "get_kernel.moduleBeta2_ds.4.bias (7,) vs model (25,)" in str(error.value)
    assert_state_equal(model, before)


@pytest.mark.parametrize("damage", ["truncated", "text", "empty"])
def test_corrupted_file_raises_value_error(tmp_path, golden_student_state, damage):
    path = tmp_path / "damaged.pth"
    torch.save({"state_dict": golden_student_state}, path)
    content = path.read_bytes()
    path.write_bytes({"truncated": content[: len(content) // 2], "text": b"not a checkpoint", "empty": b""}[damage])
    size = path.stat().st_size
    with pytest.raises(ValueError, match=rf"^{path} is not a PyTorch checkpoint \({size} bytes\)$"):
        load_checkpoint(models.student_STMFNet(), path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(models.student_STMFNet(), tmp_path / "absent.pth")


def test_non_finite_weights_are_refused_by_name(tmp_path, golden_student_state):
    state = dict(golden_student_state)
    state["get_kernel.moduleAlpha1.7.weight"] = state["get_kernel.moduleAlpha1.7.weight"].clone()
    state["get_kernel.moduleAlpha1.7.weight"].view(-1)[3] = float("nan")
    state["get_kernel.moduleBeta2_ds.4.bias"] = torch.full_like(state["get_kernel.moduleBeta2_ds.4.bias"], float("inf"))
    path = tmp_path / "diverged.pth"
    torch.save({"state_dict": state}, path)
    model = models.student_STMFNet()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(ValueError, match="NaN or infinite weights") as error:
        load_checkpoint(model, path)
    message = str(error.value)
    assert "tensors (2): " in message and str(path) in message
    assert "get_kernel.moduleAlpha1.7.weight" in message and "get_kernel.moduleBeta2_ds.4.bias" in message
    assert_state_equal(model, before)
