"""distill.py end to end on the tiny dataset of test_train.py: distillation steps of the student from a frozen
teacher checkpoint, its outputs, and the teacher left untouched (training mode by default, no gradients, same
weights and batch-norm statistics)."""
import re

import pytest
import torch

import distill
from losses import DistillationLoss
from models import get_model_class
from pipeline.checkpoints import last_checkpoint_path
from pipeline.teacher import FrozenTeacher
from test_teacher import TinyTeacher
from tiny_dataset import PATCH, write_tiny_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    """A freshly initialised teacher saved in the original checkpoint format."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("teacher") / "stmfnet.pth"
    torch.save({"epoch": 70, "state_dict": get_model_class("STMFNet")().state_dict()}, path)
    return path


def distill_argv(data_dir, teacher_path, out_dir, *extra):
    return ["--student", "student_STMFNet", "--teacher", "STMFNet", "--teacher_dir", str(teacher_path),
            "--distill_loss_fn", "1*Lap", "--student_loss_fn", "1*Lap", "--alpha", "0.1", "--data_dir", str(data_dir),
            "--out_dir", str(out_dir), "--optimizer", "ADAMax", "--patch_size", str(PATCH), "--batch_size", "1",
            "--seed", "0", "--device", "cpu", *extra]


@pytest.mark.slow
def test_distillation_step_with_a_frozen_teacher(data_dir, teacher_path, tmp_path, monkeypatch):
    teachers = []

    def recording_load_teacher(args, device):
        teachers.append(load_teacher(args, device))
        return teachers[-1]

    load_teacher = distill.load_teacher
    monkeypatch.setattr(distill, "load_teacher", recording_load_teacher)
    out_dir = tmp_path / "distill"
    assert distill.main(distill_argv(data_dir, teacher_path, out_dir, "--max_steps", "2")) == 0

    (teacher,) = teachers
    assert teacher.mode == "train" and teacher.model.training  # the original's teacher mode, by default
    assert all(not param.requires_grad and param.grad is None for param in teacher.model.parameters())
    saved = torch.load(teacher_path, map_location="cpu", weights_only=True)["state_dict"]
    for name, value in teacher.model.state_dict().items():  # batch-norm statistics and counters included
        assert torch.equal(value, saved[name]), name
    assert "STMFNet from" in log_text(out_dir) and "train mode" in log_text(out_dir)

    log = (out_dir / "log.txt").read_text()
    assert "Distilling student_STMFNet from STMFNet" in log and "sha256" in log
    assert "Loss 0.1 * (1*Lap) + (1*Lap), optimizer Adamax" in log
    assert "Train Epoch: [1/70]" in log and "Valid PSNR" in log and "Density" not in log
    assert f"teacher_dir: {teacher_path}" in (out_dir / "config.txt").read_text()
    checkpoint = torch.load(out_dir / "checkpoint" / "model_epoch001.pth", weights_only=True)
    assert set(checkpoint) == {"epoch", "state_dict"}
    assert set(checkpoint["state_dict"]) == set(get_model_class("student_STMFNet")().state_dict())
    last = torch.load(last_checkpoint_path(out_dir), weights_only=True)
    assert last["progress"]["step"] == 2 and last["args"]["alpha"] == 0.1 and last["args"]["teacher_mode"] == "train"
    assert (out_dir / "curves.png").exists() and not (out_dir / "sparsity.json").exists()


def log_text(out_dir):
    return (out_dir / "log.txt").read_text()


def test_teacher_mode_flag_builds_the_teacher_in_that_mode(teacher_path, monkeypatch):
    monkeypatch.setattr(distill, "get_model_class", lambda name: lambda args: TinyTeacher())
    monkeypatch.setattr(distill, "load_checkpoint", lambda model, path: None)
    for mode, training in (("train", True), ("eval", False)):
        args = distill.build_parser().parse_args(["--data_dir", "x", "--teacher_dir", str(teacher_path),
                                                  "--teacher_mode", mode])
        teacher = distill.load_teacher(args, torch.device("cpu"))
        assert isinstance(teacher, FrozenTeacher) and teacher.mode == mode and teacher.model.training == training
        frames = [torch.rand(2, 3, 8, 8) for _ in range(5)]
        student = TinyTeacher().train()
        _, prediction = distill.distillation_step(teacher, student, DistillationLoss("1*L1", "1*L1", 0.1), frames)
        assert prediction.requires_grad


def test_missing_teacher_is_a_clear_error(data_dir, tmp_path, capsys):
    argv = distill_argv(data_dir, tmp_path / "nowhere.pth", tmp_path / "out", "--max_steps", "1")
    status = distill.main(argv)
    assert status == 2
    assert re.search("^distill.py: error: --teacher_dir .*nowhere.pth not found", capsys.readouterr().err, re.M)


def test_obproxsg_is_not_a_distillation_optimizer(capsys):
    with pytest.raises(SystemExit):
        distill.build_parser().parse_args(["--data_dir", "x", "--optimizer", "OBProxSG"])
    assert "invalid choice: 'OBProxSG'" in capsys.readouterr().err


def test_original_defaults():
    args = distill.build_parser().parse_args(["--data_dir", "x"])
    assert (args.student, args.teacher, args.teacher_dir) == ("student_STMFNet", "STMFNet", "./models/stmfnet.pth")
    assert (args.distill_loss_fn, args.student_loss_fn, args.alpha) == ("1*GAN", "1*Lap", 0.1)
    assert args.teacher_mode == "train"  # the original ran its teacher in training mode
    assert (args.epochs, args.batch_size, args.patch_size, args.lr, args.optimizer) == (70, 2, 256, 0.001, "ADAMax")
    assert args.finetune_pwc is True  # store_true with default True: always on, as in the original
    assert args.train_sets == ["bvidvc", "vimeo"] and args.out_dir == "./distill_results"
