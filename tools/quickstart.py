"""The shipped demo student at work on frames it never saw (a few minutes on a CPU).

    python tools/quickstart.py [--out quickstart] [--frames 12] [--device auto]

1. held-out data: the last frames of assets/bbb_448x256.mp4 (frames 96-131; the demo student was trained on
   frames 0-91 only), written once as a VFITex-style sequence;
2. evaluate.py of the demo student (assets/demo_student.pth) and of frame averaging and frame repetition on
   those frames (a window every two frames: inputs t, t+2, t+4, t+6, target t+3);
3. interpolate.py of the first --frames held-out frames to twice the frame rate, a video to watch;
4. a table of the results.

Each run writes into a new folder <out>/run-<time> (the scripts' own output goes to logs/ there), so nothing of an
earlier run is touched.
"""
from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from common.failures import RUN_FAILURE_STATUS, ScriptError, run_script  # noqa: E402
from data.make_demo_data import DEFAULT_TEST_FRAMES, DEFAULT_TEST_NAME  # noqa: E402

DEMO_CHECKPOINT = REPO_ROOT / "assets" / "demo_student.pth"
DATASET = "VFITex_quintuplet"
CLIP_FPS = 25
METHODS = {  # table row: extra evaluate.py flags
    "demo student_STMFNet": ["--net", "student_STMFNet", "--checkpoint", str(DEMO_CHECKPOINT)],
    "frame averaging": ["--baseline", "average"],
    "frame repetition": ["--baseline", "repeat"],
}


def run(step: str, log: Path, *command: str) -> float:
    """Run a repository script with its output in ``log``; returns the seconds it took."""
    print(f"{step} ...", end=" ", flush=True)
    start = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        result = subprocess.run([sys.executable, *command], cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        print("failed")
        raise ScriptError(f"`python {' '.join(command)}` exited with {result.returncode}; see {log}",
                          RUN_FAILURE_STATUS)
    print(f"{seconds:.0f} s", flush=True)
    return seconds


def results_table(eval_dirs: dict[str, Path]) -> str:
    lines = ["| method | PSNR (dB) | SSIM |", "| --- | --- | --- |"]
    for method, eval_dir in eval_dirs.items():
        mean = json.loads((eval_dir / DATASET / "results.json").read_text())["mean"]
        lines.append(f"| {method} | {mean['PSNR']:.2f} | {mean['SSIM']:.4f} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quickstart.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("quickstart"), help="folder for the held-out data and runs")
    parser.add_argument("--frames", type=int, default=12, help="held-out frames to interpolate into the video")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    return run_script(build_parser(), argv, quickstart)


def quickstart(args: argparse.Namespace) -> None:
    if not DEMO_CHECKPOINT.is_file():
        raise ScriptError(f"{DEMO_CHECKPOINT} not found (it is part of the repository)")
    if args.frames < 2:
        raise ScriptError(f"--frames {args.frames}: need at least 2 frames to interpolate between")
    out = args.out.resolve()
    data = out / "heldout_data"
    sequence = data / "vfitex" / DEFAULT_TEST_NAME
    run_dir = out / f"run-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    logs = run_dir / "logs"
    start = time.perf_counter()

    if not sequence.is_dir():
        held_out = f"{DEFAULT_TEST_FRAMES.start}-{DEFAULT_TEST_FRAMES.stop - 1}"
        run(f"held-out frames {held_out} of the clip", logs / "data.txt",
            "-m", "data.make_demo_data", "--out", str(data), "--test_only")
    eval_dirs = {}
    for method, flags in METHODS.items():
        eval_dirs[method] = run_dir / f"eval_{method.split()[-1].lower()}"
        run(f"evaluate {method}", logs / f"{eval_dirs[method].name}.txt", "evaluate.py", "--dataset", DATASET,
            "--data_dir", str(data), "--out_dir", str(eval_dirs[method]), "--device", args.device, *flags)
    video = run_dir / "bbb_heldout_x2.mp4"
    run(f"interpolate {args.frames} held-out frames to {2 * CLIP_FPS} fps", logs / "interpolate.txt",
        "interpolate.py", "--net", "student_STMFNet", "--checkpoint", str(DEMO_CHECKPOINT), "--input", str(sequence),
        "--input_fps", str(CLIP_FPS), "--max_frames", str(args.frames), "--output", str(video),
        "--device", args.device)

    windows = len(json.loads((eval_dirs["frame averaging"] / DATASET / "results.json").read_text())["items"])
    print(f"\nHeld-out frames of the clip ({windows} windows, never seen in training), "
          f"{time.perf_counter() - start:.0f} s in all:\n")
    print(results_table(eval_dirs))
    print(f"\nInterpolated video: {video}\nEverything of this run: {run_dir}")


if __name__ == "__main__":
    sys.exit(main())
