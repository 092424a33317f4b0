"""Every expected failure of the scripts ends in one line naming the culprit (the file or the flag): exit status
other than 0, no traceback on stderr, and no output or earlier file changed (tracebacks may go to log.txt).

One table, ``CASES``, holds every case; one parametrised test runs them in-process (``main(argv)`` of the script,
in a fresh folder that is also the working directory). A case's ``arrange`` builds its files and returns the
arguments; ``culprit`` is text the error line must contain, with ``{tmp}`` standing for the case's folder.
"""
from __future__ import annotations

import errno
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import av
import numpy as np
import pytest
import torch
from PIL import Image

import models
from losses import DiscriminatorConfig, Loss
from utility import make_optimizer, make_scheduler
from pipeline.checkpoints import Progress, save_last_checkpoint
from pipeline.output_folder import MANIFEST
from tiny_dataset import write_tiny_dataset

Arrange = Callable[[Path, pytest.MonkeyPatch], list[str]]
UNCHECKED_NAMES = ("log.txt",)  # a script may append the traceback of the failure to its log


@dataclass(frozen=True)
class Case:
    script: str
    arrange: Arrange
    culprit: str
    creates: tuple[str, ...] = ()  # what the run may leave (beside log.txt): e.g. the run folder holding its log


# --- inputs shared by the cases ------------------------------------------------------------------------------


def frames_folder(folder: Path, sizes: tuple[tuple[int, int], ...] = ((16, 24),) * 3) -> Path:
    folder.mkdir()
    for index, (height, width) in enumerate(sizes):
        pixels = np.random.default_rng(index).integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index + 1}.png")
    return folder


def clip(path: Path, count: int = 3, height: int = 16, width: int = 24, faststart: bool = False) -> Path:
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream("libx264", rate=10, options={"crf": "20", "preset": "ultrafast"})
        stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
        for index in range(count):
            pixels = np.random.default_rng(index).integers(0, 256, (height, width, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def interpolate_case(extra: list[str], culprit: str, prepare: Callable[[Path, pytest.MonkeyPatch], None] = None,
                     input_name: str = "frames", output: str = "out.mp4") -> Case:
    """interpolate.py on a 3-frame folder (or what ``prepare`` makes) with the model-free baseline."""
    def arrange(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        if prepare is not None:
            prepare(tmp, monkeypatch)
        if not (tmp / input_name).exists():
            frames_folder(tmp / input_name)
        (tmp / "earlier.txt").write_text("a file the run must not touch")
        return ["--input", input_name, "--output", output, *extra]

    return Case("interpolate", arrange, culprit)


def mixed_size_folder(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames_folder(tmp / "frames", ((16, 24), (18, 24), (16, 24)))


def read_only_folder(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder nobody may write into: by its mode, and (the tests may run as root) by refusing creation in it."""
    folder = tmp / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    monkeypatch.setattr(os, "open", refuse_under(folder, os.open))
    monkeypatch.setattr(os, "mkdir", refuse_under(folder, os.mkdir))


def refuse_under(folder: Path, call: Callable) -> Callable:
    def refusing(path, *args, **kwargs):
        if Path(os.path.abspath(os.fsdecode(path))).parent == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))
        return call(path, *args, **kwargs)

    return refusing


def file_as_parent(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp / "notes.txt").write_text("a file, not a folder")


def foreign_output_folder(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp / "results").mkdir()
    (tmp / "results" / "paper.tex").write_text("not written by interpolate.py")


def non_finite_checkpoint(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = models.student_STMFNet().state_dict()
    state["get_kernel.moduleAlpha1.7.weight"].view(-1)[0] = float("nan")
    torch.save({"epoch": 1, "state_dict": state}, tmp / "diverged.pth")


def truncated_clip(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = clip(tmp / "full.mp4", count=20, height=32, width=32, faststart=True)
    content = full.read_bytes()
    full.unlink()
    (tmp / "cut.mp4").write_bytes(content[: len(content) // 2])


def full_disk(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The third PNG frame finds the disk full."""
    saves = [0]
    save = Image.Image.save

    def failing_save(image, fp, *args, **kwargs):
        saves[0] += 1
        if saves[0] > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(fp))
        return save(image, fp, *args, **kwargs)

    frames_folder(tmp / "frames")
    monkeypatch.setattr(Image.Image, "save", failing_save)


BASELINE = ["--baseline", "average", "--preset", "ultrafast"]
CASES: dict[str, Case] = {
    "interpolate mixed-size folder": interpolate_case(BASELINE, "img2.png is 24x18", mixed_size_folder),
    "interpolate read-only output": interpolate_case(
        BASELINE, "cannot write readonly/out.mp4: Permission denied", read_only_folder, output="readonly/out.mp4"),
    "interpolate read-only folder output": interpolate_case(
        BASELINE, "cannot write readonly/out: Permission denied", read_only_folder, output="readonly/out"),
    "interpolate output parent is a file": interpolate_case(
        BASELINE, "{tmp}/notes.txt is a file, not a folder", file_as_parent, output="notes.txt/out.mp4"),
    "interpolate --out_fps 0": interpolate_case([*BASELINE, "--out_fps", "0"], "--out_fps"),
    "interpolate --input_fps 0": interpolate_case([*BASELINE, "--input_fps", "0"], "--input_fps"),
    "interpolate --input_fps nan": interpolate_case([*BASELINE, "--input_fps", "nan"], "--input_fps"),
    "interpolate --kernel_size 0": interpolate_case(["--kernel_size", "0"], "--kernel_size"),
    "interpolate --batch_size 0 with --tile": interpolate_case(
        [*BASELINE, "--tile", "64", "--batch_size", "0"], "--batch_size"),
    "interpolate --max_frames 1": interpolate_case([*BASELINE, "--max_frames", "1"], "--max_frames"),
    "interpolate --crf 99": interpolate_case([*BASELINE, "--crf", "99"], "--crf 99"),
    "interpolate --preset": interpolate_case([*BASELINE[:2], "--preset", "bogus"], "--preset 'bogus'"),
    "interpolate fps the encoder refuses": interpolate_case(  # the folders it made for the output go again
        [*BASELINE, "--codec", "mpeg4", "--out_fps", "100000"], "--out_fps", output="new/deeper/out.mp4"),
    "interpolate non-finite checkpoint": interpolate_case(
        ["--net", "student_STMFNet", "--checkpoint", "diverged.pth", "--device", "cpu"],
        "diverged.pth holds NaN or infinite weights", non_finite_checkpoint),
    "interpolate truncated video": interpolate_case(
        BASELINE, "cut.mp4 is damaged or truncated", truncated_clip, input_name="cut.mp4"),
    "interpolate --overwrite of a folder it did not write": interpolate_case(
        [*BASELINE, "--overwrite"], "results is a folder that interpolate.py did not write", foreign_output_folder,
        output="results"),
    "interpolate output containing the input": interpolate_case(
        [*BASELINE, "--overwrite"], "--output inner/.. holds --input frames", output="inner/.."),
    "interpolate full disk": interpolate_case(BASELINE, "no space left on {tmp}/new", full_disk, output="new/pngs"),
}


# --- evaluate.py ------------------------------------------------------------------------------------------------

UCF = "Ucf101_quintuplet"
UCF_FRAMES = ("frame0", "frame1", "framet", "frame2", "frame3")


def ucf_frame(tmp: Path, item: str, name: str) -> Path:
    return tmp / "data" / "ucf101" / item / f"{name}.png"


def evaluate_case(extra: list[str], culprit: str, prepare: Callable[[Path, pytest.MonkeyPatch], None] = None,
                  out_dir: str = "out", baseline: bool = True) -> Case:
    """evaluate.py (the average baseline unless ``baseline`` is False) on data/ucf101 with two items of 16x16 frames
    (or what ``prepare`` makes of them), next to an earlier run's results in out/Davis90_quintuplet."""
    def arrange(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        for item in ("0", "1"):
            for index, name in enumerate(UCF_FRAMES):
                path = ucf_frame(tmp, item, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                pixels = np.random.default_rng(index).integers(0, 256, (16, 16, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(path)
        earlier = tmp / "out" / "Davis90_quintuplet"
        earlier.mkdir(parents=True)
        (earlier / "results.json").write_text('{"model": "an earlier run"}')
        (earlier / MANIFEST).write_text('{"program": "evaluate.py", "files": ["results.json"]}')
        if prepare is not None:
            prepare(tmp, monkeypatch)
        return ["--data_dir", "data", "--dataset", UCF, "--out_dir", out_dir, "--device", "cpu",
                *(["--baseline", "average"] if baseline else []), *extra]

    return Case("evaluate", arrange, culprit)


def mixed_size_item(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("RGB", (20, 16)).save(ucf_frame(tmp, "1", "frame2"))


def not_an_image(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ucf_frame(tmp, "0", "frame1").write_bytes(b"these bytes are not a PNG")


def truncated_png(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ucf_frame(tmp, "0", "framet")
    path.write_bytes(path.read_bytes()[:400])  # the header is intact, the image data cut


def one_pixel_frames(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for item in ("0", "1"):
        for name in UCF_FRAMES:
            Image.new("RGB", (1, 1)).save(ucf_frame(tmp, item, name))


def foreign_results_folder(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp / "out" / UCF).mkdir(parents=True)
    (tmp / "out" / UCF / "paper.tex").write_text("not written by evaluate.py")


def empty_checkpoint(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp / "weights.pth").write_bytes(b"")


CASES.update({
    "evaluate frames of different sizes": evaluate_case([], "item 1: its frames differ in size", mixed_size_item),
    "evaluate non-image PNG": evaluate_case([], "data/ucf101/0/frame1.png", not_an_image),
    "evaluate truncated PNG": evaluate_case([], "data/ucf101/0/framet.png", truncated_png),
    "evaluate 1x1 frames": evaluate_case([], "frames of 1x1 are too small for SSIM", one_pixel_frames),
    "evaluate --out_dir is a file": evaluate_case([], "--out_dir notes.txt is a file", file_as_parent,
                                                  out_dir="notes.txt"),
    "evaluate read-only --out_dir": evaluate_case([], "--out_dir readonly", read_only_folder, out_dir="readonly"),
    "evaluate --out_dir inside the input": evaluate_case([], "lies inside --data_dir", out_dir="data/ucf101/0/.."),
    "evaluate --overwrite of a folder it did not write": evaluate_case(
        ["--overwrite"], "out/Ucf101_quintuplet is not empty and was not written by evaluate.py",
        foreign_results_folder),
    "evaluate empty checkpoint": evaluate_case(
        ["--checkpoint", "weights.pth"], "weights.pth is not a PyTorch checkpoint (0 bytes)", empty_checkpoint,
        baseline=False),
})


# --- train.py and distill.py ---------------------------------------------------------------------------------

TRAIN = ["--net", "student_STMFNet", "--data_dir", "data", "--out_dir", "run", "--patch_size", "64",
         "--batch_size", "1", "--seed", "3", "--device", "cpu", "--max_steps", "1"]
DISTILL = ["--student", "student_STMFNet", "--teacher", "student_STMFNet", "--teacher_dir", "teacher.pth",
           *TRAIN[2:]]
RUN_FOLDER = ("run",)  # a run that started logs to run/log.txt


def training_case(script: str, extra: list[str], culprit: str,
                  prepare: Callable[[Path, pytest.MonkeyPatch], None] = None, creates: tuple[str, ...] = ()) -> Case:
    """train.py (the student, one step of 64x64 crops) or distill.py (the student from a student "teacher") on the
    tiny dataset of the training tests, or what ``prepare`` makes of it."""
    def arrange(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        write_tiny_dataset(tmp / "data")
        torch.manual_seed(0)
        torch.save({"epoch": 1, "state_dict": models.student_STMFNet().state_dict()}, tmp / "teacher.pth")
        (tmp / "earlier.txt").write_text("a file the run must not touch")
        if prepare is not None:
            prepare(tmp, monkeypatch)
        return [*(TRAIN if script == "train" else DISTILL), *extra]

    return Case(script, arrange, culprit, creates)


def damaged_file(name: str, content: bytes = b"") -> Callable[[Path, pytest.MonkeyPatch], None]:
    def prepare(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(content)

    return prepare


def other_network_checkpoint(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.save({"epoch": 1, "state_dict": torch.nn.Linear(2, 2).state_dict()}, tmp / "other.pth")


def earlier_run(script: str, *flags: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """run/checkpoint/last.pth as ``script`` saves it after a step with ``flags`` (the states of freshly built
    objects: what matters is that it is a real one)."""
    def prepare(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        module = importlib.import_module(script)
        args = module.build_parser().parse_args([*(TRAIN if script == "train" else DISTILL), *flags])
        model = models.student_STMFNet(args)
        optimizer = make_optimizer(args, model, 3)
        loss = Loss("1*Lap", DiscriminatorConfig(args.patch_size, args.optimizer, args.lr, args.weight_decay))
        progress = Progress(seed=3, steps_per_epoch=3, step=1, epoch_step=1).to_dict()
        save_last_checkpoint(tmp / "run", model=model, optimizer=optimizer, scheduler=make_scheduler(args, optimizer),
                             loss=loss, progress=progress, flags=vars(args))

    return prepare


def full_disk_for_training(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No room for any file the run writes (its log aside)."""
    from common import safe_write

    monkeypatch.setattr(safe_write, "open", no_space, raising=False)


def no_space(path, mode="r", *args, **kwargs):
    if set(mode) & set("wax"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(path))
    return open(path, mode, *args, **kwargs)


LAST = "run/checkpoint/last.pth"
CASES.update({
    "train --load missing": training_case("train", ["--load", "missing.pth"], "--load missing.pth not found",
                                          creates=RUN_FOLDER),
    "train --load empty file": training_case("train", ["--load", "empty.pth"], "--load: empty.pth",
                                             damaged_file("empty.pth"), RUN_FOLDER),
    "train --load of another network": training_case(
        "train", ["--load", "other.pth"], "--load: checkpoint other.pth does not match student_STMFNet",
        other_network_checkpoint, RUN_FOLDER),
    "train --pwc_weights damaged": training_case("train", ["--pwc_weights", "pwc.pytorch"], "--pwc_weights: pwc",
                                                 damaged_file("pwc.pytorch", b"not weights")),
    "train --lr below 0": training_case("train", ["--lr", "-1"], "argument --lr"),
    "train --loss unknown": training_case("train", ["--loss", "1*Nope"], "argument --loss: unknown loss 'Nope'"),
    "train --decay_type unknown": training_case("train", ["--decay_type", "bogus"], "argument --decay_type"),
    "train --decay_type plateau without --patience": training_case(
        "train", ["--decay_type", "plateau"], "--decay_type plateau needs --patience"),
    "train --patch_size not a multiple of 16": training_case(
        "train", ["--patch_size", "40"], "argument --patch_size: 40 is not a multiple of 16"),
    "train --resume without a run": training_case("train", ["--resume"], f"--resume: {LAST} not found",
                                                  creates=RUN_FOLDER),
    "train --resume of an empty last.pth": training_case(
        "train", ["--resume"], f"--resume: {LAST} is not a PyTorch checkpoint (0 bytes)", damaged_file(LAST)),
    "train --resume of a damaged last.pth": training_case(
        "train", ["--resume"], f"--resume: {LAST} is not a PyTorch checkpoint (14 bytes)",
        damaged_file(LAST, b"PK\x03\x04 cut short")),
    "train --resume with another --net": training_case(
        "train", ["--resume", "--net", "STMFNet"], f"--resume: {LAST} is a run of --net student_STMFNet, not STMFNet",
        earlier_run("train")),
    "train --resume with another batch product": training_case(
        "train", ["--resume", "--batch_size", "2"], "took 1 items per step", earlier_run("train")),
    "train --resume of a distill.py run": training_case(
        "train", ["--resume"], f"--resume: {LAST} was not written by train.py", earlier_run("distill")),
    "train full disk": training_case("train", [], "no space left on run/config.txt", full_disk_for_training,
                                     RUN_FOLDER),
    "distill --teacher_dir missing": training_case(
        "distill", ["--teacher_dir", "nowhere.pth"], "--teacher_dir nowhere.pth not found", creates=RUN_FOLDER),
    "distill --teacher_dir damaged": training_case(
        "distill", [], "--teacher_dir: teacher.pth", damaged_file("teacher.pth", b"garbage"), RUN_FOLDER),
    "distill --distill_loss_fn unknown": training_case(
        "distill", ["--distill_loss_fn", "1*Nope"], "argument --distill_loss_fn: unknown loss 'Nope'"),
    "distill --alpha -5": training_case("distill", ["--alpha", "-5"], "argument --alpha"),
    "distill --resume with another --teacher": training_case(
        "distill", ["--resume", "--teacher", "STMFNet"], "is a run of --teacher student_STMFNet, not STMFNet",
        earlier_run("distill")),
})


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None), by relative path."""
    return {
        str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.name not in UNCHECKED_NAMES
    }


def run_main(script: str, argv: list[str]) -> object:
    """The exit status of ``main(argv)``: from SystemExit, or what it returns."""
    try:
        return importlib.import_module(script).main(argv)
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize("name", list(CASES))
def test_expected_failure_is_one_clear_line(name, tmp_path, monkeypatch, capsys):
    case = CASES[name]
    monkeypatch.chdir(tmp_path)
    argv = case.arrange(tmp_path, monkeypatch)
    before = snapshot(tmp_path)
    capsys.readouterr()
    status = run_main(case.script, argv)
    stderr = capsys.readouterr().err
    assert isinstance(status, (int, str)) and status not in (0, None), f"exit status {status!r}"
    assert "Traceback" not in stderr
    error_lines = [line for line in stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1, stderr
    assert case.culprit.format(tmp=tmp_path) in error_lines[0]
    monkeypatch.undo()  # the snapshot reads files with the real functions
    after = snapshot(tmp_path)
    assert {path: content for path, content in after.items() if path not in case.creates or path in before} == before
