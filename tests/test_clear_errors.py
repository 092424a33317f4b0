"""Every expected failure of the scripts, run as a user runs them (a fresh process on a small workspace): exit
status not 0, the last line of stderr is ``<script>: error: <message>`` naming the culprit, no traceback on stderr,
and no file that existed before the run changed or disappeared (a run that had claimed its output folder may leave
its log.txt and ownership files there).

One table, ``CASES``; a case damages the workspace (``prepare``), then runs ``script`` with ``args`` in the workspace
folder; ``culprit`` is text the error line must contain.
"""
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT
from pipeline.output_folder import LOCK, MANIFEST

UCF = "Ucf101_quintuplet"
FRAMES = ("frame0", "frame1", "framet", "frame2", "frame3")
# Files a run may add to a folder it claimed before failing.
RUN_FILES = {"log.txt", MANIFEST, LOCK}


def write_workspace(workspace: Path) -> None:
    """data/ucf101/0 and 1, five 16x16 frames each (large enough for SSIM, small enough to be instant)."""
    generator = np.random.default_rng(0)
    for item in ("0", "1"):
        folder = workspace / "data" / "ucf101" / item
        folder.mkdir(parents=True)
        for name in FRAMES:
            Image.fromarray(generator.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{name}.png")


def frame(workspace: Path, item: str, name: str) -> Path:
    return workspace / "data" / "ucf101" / item / f"{name}.png"


def mixed_sizes(workspace: Path) -> None:
    Image.new("RGB", (20, 16)).save(frame(workspace, "1", "frame2"))


def not_an_image(workspace: Path) -> None:
    frame(workspace, "0", "frame1").write_bytes(b"these bytes are not a PNG")


def truncated(workspace: Path) -> None:
    path = frame(workspace, "0", "framet")
    path.write_bytes(path.read_bytes()[:400])  # header intact, image data cut


def one_pixel_frames(workspace: Path) -> None:
    for item in ("0", "1"):
        for name in FRAMES:
            Image.new("RGB", (1, 1)).save(frame(workspace, item, name))


def out_dir_is_a_file(workspace: Path) -> None:
    (workspace / "results").write_text("a file, not a folder")


def foreign_output_folder(workspace: Path) -> None:
    (workspace / "out" / UCF).mkdir(parents=True)
    (workspace / "out" / UCF / "notes.txt").write_text("mine")


def empty_checkpoint(workspace: Path) -> None:
    (workspace / "weights.pth").write_bytes(b"")


def read_only_folder(workspace: Path) -> None:
    folder = workspace / "read_only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    # root writes through permission bits: only a read-only file system refuses it
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("running as root without permission to mount a read-only file system")


@dataclass(frozen=True)
class Case:
    id: str
    script: str
    args: tuple[str, ...]
    culprit: str
    prepare: Optional[Callable[[Path], None]] = None


EVALUATE = ("--data_dir", "data", "--dataset", UCF, "--device", "cpu")
BASELINE = (*EVALUATE, "--baseline", "average")

CASES = [
    Case("evaluate-frames-of-different-sizes", "evaluate.py", (*BASELINE, "--out_dir", "out"), "item 1", mixed_sizes),
    Case("evaluate-not-an-image", "evaluate.py", (*BASELINE, "--out_dir", "out"),
         "data/ucf101/0/frame1.png", not_an_image),
    Case("evaluate-truncated-png", "evaluate.py", (*BASELINE, "--out_dir", "out"),
         "data/ucf101/0/framet.png", truncated),
    Case("evaluate-1x1-frames", "evaluate.py", (*BASELINE, "--out_dir", "out"), "1x1 are too small for SSIM",
         one_pixel_frames),
    Case("evaluate-out-dir-is-a-file", "evaluate.py", (*BASELINE, "--out_dir", "results"), "--out_dir results",
         out_dir_is_a_file),
    Case("evaluate-out-dir-read-only", "evaluate.py", (*BASELINE, "--out_dir", "read_only"), "read_only",
         read_only_folder),
    Case("evaluate-out-dir-inside-the-input", "evaluate.py", (*BASELINE, "--out_dir", "data/ucf101/0/.."),
         "lies inside the input"),
    Case("evaluate-overwrite-a-folder-it-did-not-write", "evaluate.py", (*BASELINE, "--out_dir", "out", "--overwrite"),
         "not written by evaluate.py", foreign_output_folder),
    Case("evaluate-empty-checkpoint", "evaluate.py", (*EVALUATE, "--checkpoint", "weights.pth", "--out_dir", "out"),
         "weights.pth", empty_checkpoint),
]


def snapshot(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.mark.slow  # a fresh interpreter per case
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_expected_failures_end_in_one_clear_line(tmp_path, case):
    write_workspace(tmp_path)
    try:
        if case.prepare is not None:
            case.prepare(tmp_path)
        before = snapshot(tmp_path)
        result = subprocess.run(
            [sys.executable, str(REPO_ROOT / case.script), *case.args],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )
        after = snapshot(tmp_path)
    finally:
        if os.path.ismount(tmp_path / "read_only"):
            subprocess.run(["umount", "-l", str(tmp_path / "read_only")], check=True)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"{case.script}: error: "), result.stderr
    assert case.culprit in last_line
    assert {name: content for name, content in after.items() if name in before} == before  # nothing changed
    assert all(Path(name).name in RUN_FILES for name in set(after) - set(before)), sorted(set(after) - set(before))
