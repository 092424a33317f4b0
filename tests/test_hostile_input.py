"""What a hostile or unlucky user brings to the newer surfaces: a crafted results manifest, a wrong or broken ONNX
file, non-finite weights, an odd frame folder, impossible rates and opsets, a killed training run, a report with
nowhere to go. Each ends in one line and loses nothing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image

import evaluate
import export_onnx
import interpolate
import train
from common.failures import ScriptError
from deploy.onnx_export import INPUT_NAMES, NETWORK_KEY, OUTPUT_NAME
from deploy.onnx_runtime import OnnxInterpolator
from pipeline.checkpoints import epoch_checkpoint_path, last_checkpoint_path
from pipeline.conversion import Conversion, model_name
from pipeline.output_folder import MANIFEST, OutputFolder
from test_interpolate import leftovers, random_frames, write_folder
from video.readers import numbered_frames

REPO = Path(__file__).resolve().parents[1]
FRAMES = ["--input_fps", "25", "--baseline", "average"]


def one_line_error(capsys, main, argv, status: int) -> str:
    assert main(argv) == status
    error = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(error)
    return error[-1]


def onnx_file(path: Path, body: str, metadata: dict[str, str] | None = None) -> Path:
    """A graph with export_onnx.py's interface: 'nan' returns I1 * NaN, 'half' returns I1 at half the width."""
    frames = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 3, "height", "width"])
              for name in INPUT_NAMES]
    output = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, None)
    if body == "nan":
        constants = [helper.make_tensor("k", TensorProto.FLOAT, [], [float("nan")])]
        nodes = [helper.make_node("Mul", ["I1", "k"], [OUTPUT_NAME])]
    else:
        constants = [helper.make_tensor(name, TensorProto.INT64, [1], [value])
                     for name, value in (("start", 0), ("end", 1 << 30), ("axis", 3), ("step", 2))]
        nodes = [helper.make_node("Slice", ["I1", "start", "end", "axis", "step"], [OUTPUT_NAME])]
    model = helper.make_model(helper.make_graph(nodes, body, frames, [output], initializer=constants),
                              opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


# --- 1. a results manifest is untrusted input -------------------------------------------------------------------


@pytest.mark.parametrize("listed", ["absolute", "dots", "symlink"])
def test_overwrite_deletes_nothing_a_crafted_manifest_lists_outside_the_folder(tmp_path, listed):
    folder, victim = tmp_path / "results", tmp_path / "victim.txt"
    folder.mkdir()
    victim.write_text("mine")
    (folder / "escape").symlink_to(tmp_path, target_is_directory=True)
    name = {"absolute": str(victim), "dots": "../victim.txt", "symlink": "escape/victim.txt"}[listed]
    (folder / MANIFEST).write_text(json.dumps({"program": "evaluate.py", "files": [name]}))
    with pytest.raises(ScriptError, match="is not a file inside .*nothing was deleted"):
        OutputFolder(folder, "evaluate.py", "--out_dir", ["results.txt"]).claim(overwrite=True)
    assert victim.read_text() == "mine"


# --- 4, 5, 7. ONNX files that are wrong, broken, or say what they are ------------------------------------------


def test_an_onnx_model_of_the_wrong_output_size_stops_interpolate_and_evaluate(tmp_path, capsys):
    model = onnx_file(tmp_path / "half.onnx", "half")
    frames = write_folder(tmp_path / "frames", random_frames(4, 16, 24))
    output = tmp_path / "out"
    line = one_line_error(capsys, interpolate.main, ["--backend", "onnxruntime", "--onnx", str(model), "--input",
                                                     str(frames), "--output", str(output), "--input_fps", "25",
                                                     "--scene_threshold", "off", "--static_threshold", "off"], 1)
    assert "returned a 1x3x16x12 frame for 1x3x16x24 inputs" in line and not output.exists()
    assert leftovers(tmp_path) == []
    data = tmp_path / "data"
    (data / "vfitex" / "clip").mkdir(parents=True)
    for number, frame in enumerate(random_frames(7, 16, 24), start=1):
        Image.fromarray(frame).save(data / "vfitex" / "clip" / f"{number:03d}.png")
    line = one_line_error(capsys, evaluate.main, ["--backend", "onnxruntime", "--onnx", str(model), "--dataset",
                                                  "VFITex_quintuplet", "--data_dir", str(data), "--out_dir",
                                                  str(tmp_path / "eval"), "--metrics", "PSNR"], 2)
    assert "is not a model written by export_onnx.py" in line


def test_non_finite_network_output_stops_the_run_naming_the_frame(tmp_path, capsys):
    model = onnx_file(tmp_path / "nan.onnx", "nan")
    frames = write_folder(tmp_path / "frames", random_frames(4, 16, 24))
    output = tmp_path / "out.mp4"
    line = one_line_error(capsys, interpolate.main, ["--backend", "onnxruntime", "--onnx", str(model), "--input",
                                                     str(frames), "--output", str(output), "--input_fps", "25",
                                                     "--scene_threshold", "off", "--static_threshold", "off"], 1)
    assert "output frame 1 came out of the network with NaN or infinite values" in line and f"--onnx {model}" in line
    assert not output.exists() and leftovers(tmp_path) == []


def test_an_onnx_model_is_named_by_its_file_and_its_metadata(tmp_path):
    plain = OnnxInterpolator(onnx_file(tmp_path / "plain.onnx", "half"), device="cpu")
    tagged = OnnxInterpolator(onnx_file(tmp_path / "tagged.onnx", "half", {NETWORK_KEY: "student_STMFNet"}), "cpu")
    assert plain.describe() == "onnx:plain.onnx" and tagged.describe() == "onnx:tagged.onnx (student_STMFNet)"
    args = interpolate.build_parser().parse_args(["--input", "x", "--backend", "onnxruntime", "--onnx", "m.onnx"])
    assert model_name(Conversion.from_args(args)) == "onnx-m"  # not --net, which ONNX Runtime never runs


# --- 6. a frame folder is read by one stated rule -----------------------------------------------------------------


def test_a_frame_folder_takes_numbered_frames_of_one_kind_and_says_what_it_skipped(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("frame_010.png", "frame_002.png", "thumbs.png", "notes.txt", ".hidden_5.png"):
        (folder / name).write_bytes(b"x")
    frames, skipped = numbered_frames(folder)
    assert [frame.name for frame in frames] == ["frame_002.png", "frame_010.png"]
    assert skipped == ["notes.txt (not .png/.jpg/.jpeg/.bmp/.webp/.tif/.tiff)", "thumbs.png (no frame number)"]
    (folder / "frame_002.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="frame_002.jpg and frame_002.png are both frame 2"):
        numbered_frames(folder)
    (folder / "frame_002.jpg").rename(folder / "frame_003.jpg")
    with pytest.raises(ValueError, match="mixes frames of 2 kinds"):
        numbered_frames(folder)


def test_bmp_and_webp_folders_are_read(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(random_frames(3, 8, 12)):
        Image.fromarray(frame).save(folder / f"{index}.bmp")
    assert [frame.name for frame in numbered_frames(folder)[0]] == ["0.bmp", "1.bmp", "2.bmp"]


# --- 8, 9. what cannot be honoured is refused in one line ----------------------------------------------------------


@pytest.mark.parametrize("flag, value", [("--out_fps", "0.0001"), ("--out_fps", "0.0006"), ("--input_fps", "0.0001")])
def test_frame_rates_that_cannot_be_written_are_refused(tmp_path, capsys, flag, value):
    frames = write_folder(tmp_path / "frames", random_frames(3, 8, 12))
    argv = ["--baseline", "average", "--input", str(frames), "--output", str(tmp_path / "out"), flag, value]
    if flag == "--out_fps":
        argv += ["--input_fps", "25"]
    line = one_line_error(capsys, interpolate.main, argv, 2)
    assert f"{flag} {value} cannot be written as a frame rate" in line and not (tmp_path / "out").exists()


def test_export_onnx_refuses_an_opset_it_cannot_write(tmp_path, capsys):
    line = one_line_error(capsys, export_onnx.main, ["--allow_random", "--opset", "99", "--out",
                                                     str(tmp_path / "m.onnx")], 2)
    assert "--opset must be 16" in line and "got 99" in line and not (tmp_path / "m.onnx").exists()


def test_export_onnx_into_a_read_only_folder_is_one_line(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root writes anywhere: make the write itself fail
        import common.safe_write as safe_write

        def refused(path, write, replace=True):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(export_onnx, "atomic_write_to", refused)
        monkeypatch.setattr(export_onnx, "export_model", lambda *args, **kwargs: None)
        assert safe_write  # the module whose writer is replaced
    line = one_line_error(capsys, export_onnx.main, ["--allow_random", "--out", str(folder / "m.onnx")], 1)
    assert line.startswith("export_onnx.py: error: cannot write") and "m.onnx" in line


@pytest.mark.parametrize("content", [b"", bytes(range(256)) * 4])
def test_a_file_that_is_no_checkpoint_is_named_with_its_size(tmp_path, capsys, content):
    weights = tmp_path / "weights.pth"
    weights.write_bytes(content)
    frames = write_folder(tmp_path / "frames", random_frames(3, 8, 12))
    line = one_line_error(capsys, interpolate.main, ["--net", "student_STMFNet", "--checkpoint", str(weights),
                                                     "--input", str(frames), "--output", str(tmp_path / "o")], 2)
    assert line.endswith(f"{weights} is not a PyTorch checkpoint ({len(content)} bytes)")


# --- 10. SIGTERM cleans up like Ctrl-C ------------------------------------------------------------------------------


def test_sigterm_removes_the_partial_output_and_says_so(tmp_path):
    frames = write_folder(tmp_path / "frames", random_frames(40, 64, 96))
    output = tmp_path / "out.mp4"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "interpolate.py"), "--input", str(frames), "--output", str(output),
         "--factor", "8", "--scene_threshold", "off", "--static_threshold", "off", "--preset", "veryslow", *FRAMES],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(name.endswith(".partial.mp4") for name in os.listdir(tmp_path)):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it wrote anything"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, error = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert error.strip().splitlines()[-1] == f"interpolate.py: interrupted; {output} was not written"
    assert not output.exists() and leftovers(tmp_path) == []


# --- 11. a training run killed while saving ------------------------------------------------------------------------


def test_a_run_killed_between_its_two_checkpoint_files_says_what_to_do(tmp_path, capsys):
    out_dir = tmp_path / "run"
    epoch_file = epoch_checkpoint_path(out_dir, 1)
    epoch_file.parent.mkdir(parents=True)
    torch.save({"epoch": 1, "state_dict": {}}, epoch_file)
    base = ["--data_dir", str(tmp_path / "data"), "--out_dir", str(out_dir)]
    for extra in ([], ["--resume"]):
        line = one_line_error(capsys, train.main, [*base, *extra], 2)
        assert "the run was stopped while saving, after model_epoch001.pth" in line
        assert f"--load {epoch_file}" in line and not last_checkpoint_path(out_dir).exists()


def test_a_resumed_run_writes_the_epoch_file_a_kill_left_out(tmp_path):
    from pipeline.checkpoints import Progress, restore_epoch_checkpoint

    model = torch.nn.Linear(2, 2)
    restore_epoch_checkpoint(tmp_path, model, Progress(seed=0, steps_per_epoch=3, epoch=2))
    saved = torch.load(epoch_checkpoint_path(tmp_path, 2), weights_only=True)
    assert saved["epoch"] == 2 and torch.equal(saved["state_dict"]["weight"], model.weight)
    restore_epoch_checkpoint(tmp_path, model, Progress(seed=0, steps_per_epoch=3, epoch=3, epoch_step=1))
    assert not epoch_checkpoint_path(tmp_path, 3).exists()  # mid-epoch: no epoch finished since


# --- 12, 13. report and out_dir paths are checked before the run -------------------------------------------------


def test_report_paths_are_checked_before_the_run(tmp_path, capsys):
    frames = write_folder(tmp_path / "frames", random_frames(3, 8, 12))
    output = tmp_path / "out"
    (tmp_path / "frames_elsewhere").mkdir()
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    cases = [
        (tmp_path / "frames_elsewhere", "is a folder; give a file name"),
        (output / "report.json", "lies inside the output"),
    ]
    if not os.access(read_only, os.W_OK):  # root may write anywhere
        cases.append((read_only / "report.json", "is not writable"))
    for report, message in cases:
        line = one_line_error(capsys, interpolate.main, ["--input", str(frames), "--output", str(output),
                                                         "--report", str(report), "--overwrite", *FRAMES], 2)
        assert message in line and not output.exists()


def test_a_full_disk_for_the_report_names_it_and_leaves_no_partial(tmp_path, capsys, monkeypatch):
    import video.summary

    frames = write_folder(tmp_path / "frames", random_frames(3, 8, 12))
    report = tmp_path / "report.json"

    def no_space(path, text, replace=True):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(video.summary, "atomic_write_text", no_space)
    line = one_line_error(capsys, interpolate.main, ["--input", str(frames), "--output", str(tmp_path / "out"),
                                                     "--report", str(report), *FRAMES], 1)
    assert "was written, but not the report" in line and str(report.parent) in line
    assert not report.exists() and leftovers(tmp_path) == []


def test_train_out_dir_that_is_a_file_names_the_flag(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    line = one_line_error(capsys, train.main, ["--data_dir", str(tmp_path / "data"), "--out_dir",
                                               str(tmp_path / "afile")], 2)
    assert line.endswith(f"--out_dir {tmp_path / 'afile'} is a file; give a folder")
