"""train.py end to end on a tiny dataset on the CPU: outputs, the compression report, exact resume, NaN stop, atomic
checkpoints; and the loop's seeded data order.

Steps of these models cost seconds on a CPU even for 64x64 crops (they pad to 128 and run at up to 256), so the
runs are as short as the checks allow: the student for four steps (three per epoch, so the resume point falls
mid-epoch and the resumed run crosses an epoch end), the teacher with OBProxSG for one.
"""
import json
import random
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch

import losses
import train
from models import get_model_class
from conftest import disk_filling_after
from utility import make_scheduler
from pipeline.checkpoints import (
    Progress,
    last_checkpoint_path,
    load_last_checkpoint,
    restore_rng_states,
    rng_states,
    save_last_checkpoint,
    start_progress,
)
from pipeline.sparsity import append_density, overall_density
from tiny_dataset import PATCH, write_tiny_dataset
from models.checkpoint import load_checkpoint

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny_data"))


def student_argv(data_dir: Path, out_dir: Path, *extra: str) -> list[str]:
    # An adversarial term too, so that the discriminator and its optimizer go through the resume.
    return ["--net", "student_STMFNet", "--data_dir", str(data_dir), "--out_dir", str(out_dir),
            "--patch_size", str(PATCH), "--batch_size", "1", "--seed", "3", "--loss", "1*Lap+0.01*GAN",
            "--lr", "1e-4", "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def full_run(data_dir, tmp_path_factory):
    """Four uninterrupted student steps: epoch 1 (3 steps) and one step of epoch 2."""
    out_dir = tmp_path_factory.mktemp("full")
    assert train.main(student_argv(data_dir, out_dir, "--max_steps", "4")) == 0
    return out_dir


@pytest.fixture(scope="module")
def half_run(data_dir, tmp_path_factory):
    """The same run stopped by --max_steps after two steps, in the middle of epoch 1."""
    out_dir = tmp_path_factory.mktemp("half")
    assert train.main(student_argv(data_dir, out_dir, "--max_steps", "2")) == 0
    return out_dir


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_tree(got, expected, where: str = "") -> None:
    if torch.is_tensor(expected):
        assert torch.equal(got, expected), f"{where} differs"
    elif isinstance(expected, dict):
        assert got.keys() == expected.keys(), where
        for key in expected:
            _assert_same_tree(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), where
        for index, (a, b) in enumerate(zip(got, expected)):
            _assert_same_tree(a, b, f"{where}[{index}]")
    else:
        assert got == expected, f"{where}: {got} != {expected}"


@pytest.mark.slow
def test_student_run_logs_and_config(full_run, half_run):
    log = (full_run / "log.txt").read_text()
    assert "STARTING FROM EPOCH 0" in log
    assert "Train Epoch: [1/70]" in log and "Step: [3/3]" in log and "Valid PSNR" in log
    assert "stopped by --max_steps at step 4" in log
    assert "stopped by --max_steps at step 2" in (half_run / "log.txt").read_text()
    config = (full_run / "config.txt").read_text()
    assert "net: student_STMFNet" in config and "max_steps: 4" in config


@pytest.mark.slow
def test_student_run_writes_epoch_checkpoints_in_the_original_format(full_run):
    # Epoch 1 complete, epoch 2 as far as it got.
    for epoch in (1, 2):
        checkpoint = _load(full_run / "checkpoint" / f"model_epoch{epoch:03d}.pth")
        assert set(checkpoint) == {"epoch", "state_dict"} and checkpoint["epoch"] == epoch
    load_checkpoint(get_model_class("student_STMFNet")(), full_run / "checkpoint" / "model_epoch002.pth")


@pytest.mark.slow
def test_student_run_last_checkpoint_holds_progress_and_states(full_run):
    model = get_model_class("student_STMFNet")()
    load_checkpoint(model, full_run / "checkpoint" / "model_epoch002.pth")
    last = _load(last_checkpoint_path(full_run))
    progress = last["progress"]
    assert (progress["epoch"], progress["step"], progress["epoch_step"], progress["steps_per_epoch"]) == (1, 4, 1, 3)
    assert [record["epoch"] for record in progress["history"]] == pytest.approx([1.0, 4 / 3])
    assert all(np.isfinite(record["valid_psnr"]) for record in progress["history"])
    assert any("discriminator" in key for key in last["loss"])  # the GAN term's state is saved
    assert last["scheduler"]["last_epoch"] == 1  # stepped at the end of epoch 1 only
    _assert_same_tree(last["model"], model.state_dict(), "model")


@pytest.mark.slow
def test_student_run_writes_the_compression_report(full_run):
    model = get_model_class("student_STMFNet")()
    load_checkpoint(model, full_run / "checkpoint" / "model_epoch002.pth")
    report = json.loads((full_run / "sparsity.json").read_text())
    assert report["step"] == 4
    assert report["density"] == pytest.approx(overall_density(model))
    assert len(report["layers"]) == sum("weight" in name for name, _ in model.named_parameters())
    assert report["suggested_widths"]["feature_extractor.conv1.resnext_small"]["widths"][0] == 32
    assert len((full_run / "density results.txt").read_text().splitlines()) == 2
    for picture in ("sparsity.png", "curves.png"):
        assert (full_run / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Suggested channel widths" in (full_run / "log.txt").read_text()


@pytest.mark.slow
def test_resume_continues_bit_exactly(full_run, half_run, data_dir, tmp_path):
    """2 steps + --resume to 4 steps == 4 steps: weights, optimizer, scheduler, discriminator, RNG, history."""
    resumed = tmp_path / "resumed"
    shutil.copytree(half_run, resumed)
    assert train.main(student_argv(data_dir, resumed, "--max_steps", "4", "--resume")) == 0
    assert "STARTING FROM EPOCH 0 (step 2)" in (resumed / "log.txt").read_text()

    expected, got = _load(last_checkpoint_path(full_run)), _load(last_checkpoint_path(resumed))
    for part in ("model", "optimizer", "scheduler", "loss", "rng"):
        _assert_same_tree(got[part], expected[part], part)
    # The record of the half epoch was replaced; the epoch's loss mean was summed over two runs.
    got_history, expected_history = got["progress"].pop("history"), expected["progress"].pop("history")
    assert got["progress"] == expected["progress"]
    assert len(got_history) == len(expected_history) == 2
    for got_record, expected_record in zip(got_history, expected_history):
        assert got_record.pop("train_loss") == pytest.approx(expected_record.pop("train_loss"), rel=1e-12)
        assert got_record == expected_record
    for epoch in (1, 2):
        name = f"model_epoch{epoch:03d}.pth"
        _assert_same_tree(_load(resumed / "checkpoint" / name), _load(full_run / "checkpoint" / name), name)


@pytest.mark.slow
def test_resume_at_max_steps_has_nothing_to_do(half_run, data_dir, tmp_path):
    out_dir = tmp_path / "done"
    shutil.copytree(half_run, out_dir)
    before = last_checkpoint_path(out_dir).read_bytes()
    assert train.main(student_argv(data_dir, out_dir, "--max_steps", "2", "--resume")) == 0
    assert "Nothing to do" in (out_dir / "log.txt").read_text()
    assert last_checkpoint_path(out_dir).read_bytes() == before


@pytest.mark.slow
def test_new_run_refuses_an_out_dir_with_checkpoints(half_run, data_dir, tmp_path, capsys):
    out_dir = tmp_path / "taken"
    shutil.copytree(half_run, out_dir)
    before = {path.name: path.read_bytes() for path in (out_dir / "checkpoint").iterdir()}
    status = train.main(student_argv(data_dir, out_dir, "--max_steps", "2"))
    assert status == 2
    assert "already holds the checkpoints of a run" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in (out_dir / "checkpoint").iterdir()} == before


@pytest.mark.slow
def test_a_full_disk_at_a_checkpoint_says_so_in_one_line_and_in_the_log(half_run, data_dir, tmp_path, monkeypatch,
                                                                         capsys):
    out_dir = tmp_path / "full"
    shutil.copytree(half_run, out_dir)
    last = last_checkpoint_path(out_dir)
    saved = last.read_bytes()
    # Room for config.txt and model_epoch001.pth (~8 MB), not for last.pth (~22 MB) at the end of epoch 1.
    with disk_filling_after(monkeypatch, 12_000_000):
        status = train.main(student_argv(data_dir, out_dir, "--max_steps", "3", "--resume"))
    assert status == 1
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f"train.py: error: no space left on {last}; free some space and continue with --resume (files written "
        f"before are intact)")
    assert last.read_bytes() == saved  # the previous last.pth, whole
    assert not [path.name for path in last.parent.iterdir() if path.name.endswith(".tmp")]
    log = (out_dir / "log.txt").read_text()
    assert f"no space left on {last}" in log and "Traceback" in log


def test_resume_removes_the_temporaries_of_a_killed_checkpoint_write(tmp_path):
    out_dir = tmp_path / "run"
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    args = train.build_parser().parse_args(["--data_dir", "x", "--out_dir", str(out_dir)])
    save_last_checkpoint(out_dir, model=model, optimizer=optimizer, scheduler=torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=1), loss=torch.nn.Module(), progress={"step": 1}, flags=vars(args))
    killed = last_checkpoint_path(out_dir).with_name(f".last.{finished.pid}-0123abcd.partial.pth")
    killed.write_bytes(b"half a checkpoint")
    assert load_last_checkpoint(out_dir)["progress"] == {"step": 1}
    assert sorted(path.name for path in last_checkpoint_path(out_dir).parent.iterdir()) == ["last.pth"]


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(half_run, data_dir, tmp_path, monkeypatch):
    out_dir = tmp_path / "nan"
    shutil.copytree(half_run, out_dir)
    before = {path.name: path.read_bytes() for path in (out_dir / "checkpoint").iterdir()}
    monkeypatch.setattr(losses.Loss, "forward", lambda self, output, gt, inputs=None: output.sum() * float("nan"))

    assert train.main(student_argv(data_dir, out_dir, "--max_steps", "4", "--resume")) == 1
    log = (out_dir / "log.txt").read_text()
    assert "training loss is nan at step 3 (epoch 1, step 3 of 3)" in log
    assert "the last good checkpoint is" in log
    assert {path.name: path.read_bytes() for path in (out_dir / "checkpoint").iterdir()} == before


def test_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    args = train.build_parser().parse_args(["--data_dir", "x", "--out_dir", str(tmp_path)])
    states = dict(model=model, optimizer=optimizer, scheduler=scheduler, loss=torch.nn.Module(), flags=vars(args))
    path = save_last_checkpoint(tmp_path, progress={"step": 1}, **states)
    saved = path.read_bytes()

    def failing_save(obj, file, *positional, **keywords):
        file.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with torch.no_grad():
        model.weight.add_(1)
    with pytest.raises(OSError, match="No space left"):
        save_last_checkpoint(tmp_path, progress={"step": 2}, **states)
    monkeypatch.undo()
    assert path.read_bytes() == saved
    assert _load(path)["progress"] == {"step": 1}
    assert [p.name for p in path.parent.iterdir()] == ["last.pth"]  # no temporary file left behind


@pytest.mark.slow
def test_teacher_with_obproxsg_and_load(data_dir, tmp_path):
    """Phase 1 as in the README, shortened: --load a teacher, one OBProxSG step, the compression report."""
    torch.manual_seed(0)
    teacher = get_model_class("STMFNet")()
    with torch.no_grad():
        teacher.metric.paramScale.fill_(3.0)  # marks the loaded weights
    load_path = tmp_path / "stmfnet.pth"
    torch.save({"epoch": 7, "state_dict": teacher.state_dict()}, load_path)
    out_dir = tmp_path / "phase1"
    argv = ["--load", str(load_path), "--data_dir", str(data_dir), "--out_dir", str(out_dir), "--epochs", "20",
            "--optimizer", "OBProxSG", "--patch_size", str(PATCH), "--batch_size", "1", "--max_steps", "1",
            "--lr", "1e-6", "--seed", "0", "--device", "cpu", "--train_sets", "vimeo"]
    assert train.main(argv) == 0

    log = (out_dir / "log.txt").read_text()
    assert f"Loaded {load_path} (saved at epoch 7)" in log
    assert "OBProxSG: prox_sg steps from step 1 (epoch 1)" in log
    assert "Train Epoch: [1/20]" in log and "Density:" in log
    trained = _load(out_dir / "checkpoint" / "model_epoch001.pth")
    # --load gives the starting weights; the epoch count starts at 0 (see the README).
    assert trained["epoch"] == 1
    assert float(trained["state_dict"]["metric.paramScale"]) == pytest.approx(3.0, abs=0.1)
    last = _load(last_checkpoint_path(out_dir))
    counters = last["optimizer"]["phase_counters"]
    assert counters["last_step_kind"] == "prox_sg"
    report = json.loads((out_dir / "sparsity.json").read_text())
    assert any(layer["name"].startswith("flow_estimator.") for layer in report["layers"])
    assert 0 < report["density"] <= 1
    assert "Suggested channel widths" in log and "feature_extractor.conv1.resnext_small: " in log


def test_missing_training_set_is_a_clear_error(tmp_path, capsys):
    data_dir = tmp_path / "data"
    write_tiny_dataset(data_dir)
    shutil.rmtree(data_dir / "bvidvc")
    argv = ["--data_dir", str(data_dir), "--out_dir", str(tmp_path / "out"), "--device", "cpu"]
    status = train.main(argv)
    assert status == 2
    assert "leaving it out of --train_sets" in capsys.readouterr().err.strip().splitlines()[-1]


def test_original_defaults():
    args = train.build_parser().parse_args(["--data_dir", "x"])
    assert (args.net, args.loss, args.out_dir, args.load) == ("STMFNet", "1*Lap", "./train_results", None)
    assert (args.epochs, args.batch_size, args.patch_size) == (70, 2, 256)
    assert (args.lr, args.lr_decay, args.decay_type, args.gamma, args.patience) == (0.001, 20, "step", 0.5, None)
    assert (args.optimizer, args.weight_decay, args.featc) == ("ADAMax", 0, [32, 64, 96, 128])
    assert args.finetune_pwc is True  # store_true with default True: always on, as in the original
    assert args.train_sets == ["vimeo", "bvidvc"] and args.max_steps is None and not args.resume


def test_random_states_round_trip_through_a_checkpoint(tmp_path):
    states = rng_states()
    first = (torch.rand(3), np.random.rand(3), random.random())
    torch.save(states, tmp_path / "rng.pth")
    restore_rng_states(torch.load(tmp_path / "rng.pth", weights_only=True))
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]


def test_pwc_weights_flag_reaches_the_model_config(data_dir, tmp_path):
    from models.stmfnet import ModelConfig

    args = train.build_parser().parse_args(["--data_dir", str(data_dir), "--pwc_weights", "network-default.pytorch"])
    assert ModelConfig.from_args(args).pwc_weights == "network-default.pytorch"
    assert ModelConfig.from_args(train.build_parser().parse_args(["--data_dir", str(data_dir)])).pwc_weights is None


def test_density_file_has_the_original_format(tmp_path):
    append_density(tmp_path, 0.75, 31.5)
    append_density(tmp_path, 0.5, 32.25)
    assert (tmp_path / "density results.txt").read_text() == "0.75,31.5,\n0.5,32.25,\n"


def _resume_with_schedule(old_flags: dict, new_flags: dict, epochs_done: int) -> torch.optim.Optimizer:
    """A run of ``old_flags`` stepped for ``epochs_done`` epochs, then resumed with ``new_flags``; returns the
    resumed optimizer (its rate is what the next step uses)."""
    base = {"lr": 1e-3, "lr_decay": 1000, "decay_type": "step", "gamma": 0.5, "patience": None, "batch_size": 2}

    def build(flags):
        args = Namespace(**{**base, **flags})
        model = torch.nn.Linear(2, 2)
        optimizer = torch.optim.Adamax(model.parameters(), lr=args.lr)
        return args, model, optimizer, make_scheduler(args, optimizer)

    old_args, model, optimizer, scheduler = build(old_flags)
    for _ in range(epochs_done):
        optimizer.step()
        scheduler.step()
    saved = {"args": vars(old_args), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "loss": {}, "rng": rng_states(),
             "progress": Progress(seed=0, steps_per_epoch=4, epoch=epochs_done).to_dict()}
    new_args, model, optimizer, scheduler = build(new_flags)
    start_progress(vars(new_args), 0, 4, 1, saved, model=model, optimizer=optimizer, scheduler=scheduler,
                   loss=torch.nn.Module())
    assert scheduler.last_epoch == epochs_done
    return optimizer


@pytest.mark.parametrize("new_flags, expected_rate", [
    ({}, 1e-3),  # unchanged flags: the saved schedule as it was
    ({"decay_type": "step_3_5"}, 2.5e-4),  # two milestones passed by epoch 6
    ({"lr_decay": 4, "gamma": 0.1}, 1e-4),  # one decay of the new step size
    ({"lr": 4e-3, "lr_decay": 4}, 2e-3),  # the new base rate, decayed once
    ({"decay_type": "plateau", "patience": 3, "lr": 3e-3}, 3e-3),
])
def test_resume_with_other_schedule_flags_continues_on_the_new_schedule(new_flags, expected_rate):
    optimizer = _resume_with_schedule({}, new_flags, epochs_done=6)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(expected_rate, rel=1e-12)


def test_resumed_new_schedule_keeps_decaying_from_the_saved_epoch():
    optimizer = _resume_with_schedule({"lr_decay": 2}, {"lr_decay": 3}, epochs_done=5)  # 1e-3 * 0.5 ** (5 // 3)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-4, rel=1e-12)
