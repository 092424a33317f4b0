"""tools/export_checkpoint.py: a run's last.pth turned into weights plus metadata."""
import importlib.util
import os
from pathlib import Path

import pytest
import torch

from common.failures import ScriptError

REPO_ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("export_checkpoint", REPO_ROOT / "tools" / "export_checkpoint.py")
export_checkpoint = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(export_checkpoint)

LOG = """2026-12-01 22:09:20 INFO Training student_STMFNet on cpu, seed 0
2026-12-01 22:09:25 INFO ********STARTING FROM EPOCH 0 (step 0)********
2026-12-01 22:10:25 INFO Train Epoch: [1/9]      Step: [2/2]          train loss: 3.0
  a line without a timestamp
2026-12-01 22:19:25 INFO Saved checkpoint/last.pth
2026-12-01 23:00:00 INFO Training student_STMFNet on cpu, seed 0
2026-12-01 23:00:10 INFO ********STARTING FROM EPOCH 1 (step 2)********
2026-12-01 23:00:40 INFO Saved checkpoint/last.pth
"""


def test_training_seconds_sums_sessions_and_skips_the_pause():
    # 22:09:20 -> 22:19:25 and 23:00:00 -> 23:00:40; the gap between the sessions does not count.
    assert export_checkpoint.training_seconds(LOG) == 605 + 40


def test_recipe_command_keeps_training_flags_only():
    args = {"net": "student_STMFNet", "loss": "1*Lap", "out_dir": "/tmp/run", "resume": True, "load": None,
            "featc": [32, 64], "finetune_pwc": True, "sync_bn": False, "lr": 0.001, "max_steps": 7}
    assert export_checkpoint.recipe_command(args) == (
        "python train.py --net student_STMFNet --loss 1*Lap --featc 32 64 --finetune_pwc --lr 0.001")
    assert export_checkpoint.recipe_command({"teacher": "STMFNet"}).startswith("python distill.py")


def test_export_writes_weights_and_metadata_once(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    weights = {"layer.weight": torch.arange(6.0).reshape(2, 3)}
    torch.save({"model": weights, "optimizer": {}, "progress": {"seed": 5, "epoch": 3, "step": 40, "world_size": 2},
                "args": {"net": "student_STMFNet", "batch_size": 4, "out_dir": str(run)}},
               run / "checkpoint" / "last.pth")
    (run / "log.txt").write_text(LOG)
    out = tmp_path / "shipped.pth"
    metadata = export_checkpoint.export(run, out, "frames 0-91 of a clip")
    saved = torch.load(out, weights_only=True)
    assert saved["epoch"] == 3 and saved["metadata"] == metadata
    torch.testing.assert_close(saved["state_dict"]["layer.weight"], weights["layer.weight"])
    assert metadata == {"command": "python train.py --net student_STMFNet --batch_size 4", "steps": 40, "epoch": 3,
                        "seed": 5, "items_per_step": 8, "data": "frames 0-91 of a clip",
                        "training_wall_time_s": 645}
    out.write_bytes(b"mine")
    with pytest.raises(ScriptError, match="already exists"):
        export_checkpoint.export(run, out, "again")
    assert out.read_bytes() == b"mine"
    with pytest.raises(ScriptError, match="last.pth not found"):
        export_checkpoint.export(tmp_path / "no_run", tmp_path / "other.pth", "x")


def test_a_fine_tuned_run_records_where_it_started(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    torch.save({"model": {"w": torch.zeros(1)}, "progress": {"seed": 0, "epoch": 1, "step": 2},
                "args": {"net": "student_STMFNet", "batch_size": 2, "load": "/somewhere/on/the/trainer/demo.pth"}},
               run / "checkpoint" / "last.pth")
    metadata = export_checkpoint.export(run, tmp_path / "a.pth", "d", started_from="assets/demo_student.pth")
    assert metadata["command"] == "python train.py --net student_STMFNet --batch_size 2 --load assets/demo_student.pth"


class _RunsCode:
    """An object whose unpickling would run a shell command (what a crafted last.pth holds)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_last_pth_runs_no_code(tmp_path, capsys):
    run, marker = tmp_path / "run", tmp_path / "code_ran"
    (run / "checkpoint").mkdir(parents=True)
    torch.save({"model": {}, "progress": {"seed": 0, "epoch": 1, "step": 1}, "args": {"batch_size": 1},
                "payload": _RunsCode(marker)}, run / "checkpoint" / "last.pth")
    status = export_checkpoint.main(["--run", str(run), "--out", str(tmp_path / "out.pth"), "--data", "x"])
    assert status == 2 and not marker.exists() and not (tmp_path / "out.pth").exists()
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "is not a plain PyTorch checkpoint" in message and "--run" in message
