"""The distillation teacher's two modes (pipeline/teacher.py): batch statistics without drift ("train", the
original's) and stored running statistics ("eval")."""
import copy

import pytest
import torch
from torch import nn

from models import get_model_class
from pipeline.teacher import FrozenTeacher, batch_statistics_only


class TinyTeacher(nn.Module):
    """Four frames in, one out, through BatchNorm2d and BatchNorm3d; a dict in training mode like STMFNet."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial = nn.Sequential(nn.Conv2d(12, 8, 3, padding=1), nn.BatchNorm2d(8), nn.PReLU())
        self.temporal = nn.Sequential(nn.Conv3d(2, 2, 3, padding=1), nn.BatchNorm3d(2))
        self.out = nn.Conv2d(8, 3, 1)

    def forward(self, frame1, frame3, frame5, frame7):
        features = self.spatial(torch.cat([frame1, frame3, frame5, frame7], 1))
        features = features + self.temporal(features.view(-1, 2, 4, *features.shape[-2:])).view(features.shape)
        output = self.out(features)
        return {"frame1": output} if self.training else output


def _teacher_with_stored_statistics(model_class=TinyTeacher):
    torch.manual_seed(0)
    model = model_class()
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
            module.num_batches_tracked.fill_(1234)
    return model


def _batches(count, batch_size=2, size=16):
    generator = torch.Generator().manual_seed(2)
    return [[torch.rand(batch_size, 3, size, size, generator=generator) for _ in range(4)] for _ in range(count)]


def _buffers(model):
    return {name: value.clone() for name, value in model.named_buffers()}


def test_train_mode_is_a_training_mode_forward_and_leaves_every_buffer_bit_identical():
    model = _teacher_with_stored_statistics()
    original = copy.deepcopy(model)  # the original's teacher: training mode, statistics updated
    loaded = _buffers(model)
    teacher = FrozenTeacher(model, "train")
    for frames in _batches(3):
        targets = teacher(*frames)
        with torch.no_grad():
            expected = original.train()(*frames)["frame1"]
        assert torch.equal(targets, expected)
        assert not targets.requires_grad
    assert all(torch.equal(value, loaded[name]) for name, value in model.named_buffers())
    assert all(module.track_running_stats for module in model.modules() if hasattr(module, "track_running_stats"))
    # the original's teacher drifted (its statistics were updated, never read)
    assert not torch.equal(original.spatial[1].running_mean, loaded["spatial.1.running_mean"])
    assert original.spatial[1].num_batches_tracked.item() == 1237


def test_the_two_modes_give_different_targets_for_the_same_batch():
    model = _teacher_with_stored_statistics()
    frames = _batches(1)[0]
    train_targets = FrozenTeacher(copy.deepcopy(model), "train")(*frames)
    eval_targets = FrozenTeacher(model, "eval")(*frames)
    with torch.no_grad():
        assert torch.equal(eval_targets, copy.deepcopy(model).eval()(*frames))
    assert (train_targets - eval_targets).abs().max() > 1e-2
    # in eval mode an item's target does not depend on the rest of its batch; in train mode it does
    alone = [frame[:1] for frame in frames]
    assert torch.allclose(FrozenTeacher(model, "eval")(*alone), eval_targets[:1], atol=1e-6)
    assert not torch.allclose(FrozenTeacher(model, "train")(*alone), train_targets[:1], atol=1e-2)


def test_batch_statistics_only_restores_tracking_after_an_error():
    model = _teacher_with_stored_statistics()
    with pytest.raises(RuntimeError):
        with batch_statistics_only(model):
            assert not model.spatial[1].track_running_stats
            raise RuntimeError("forward failed")
    assert model.spatial[1].track_running_stats and model.temporal[1].track_running_stats


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="--teacher_mode must be one of train, eval"):
        FrozenTeacher(TinyTeacher(), "frozen")


@pytest.mark.slow
def test_train_mode_of_the_real_teacher_equals_its_training_mode_forward():
    model = _teacher_with_stored_statistics(get_model_class("STMFNet"))
    original = copy.deepcopy(model)
    loaded = _buffers(model)
    frames = _batches(1, batch_size=2, size=32)[0]
    targets = FrozenTeacher(model, "train")(*frames)
    with torch.no_grad():
        assert torch.equal(targets, original.train()(*frames)["frame1"])
    assert all(torch.equal(value, loaded[name]) for name, value in model.named_buffers())


def test_teacher_targets_equal_the_autograd_forward_bit_for_bit():
    """The teacher runs the plain layers, so its targets without autograd are the original's training-mode forward
    with autograd, bit for bit (no fused or reordered CPU kernels in between)."""
    model = _teacher_with_stored_statistics(get_model_class("STMFNet"))
    original = copy.deepcopy(model)
    frames = _batches(1, batch_size=2, size=32)[0]
    targets = FrozenTeacher(model, "train")(*frames)
    with_autograd = original.train()(*frames)["frame1"]
    assert with_autograd.requires_grad and torch.equal(targets, with_autograd.detach())
