"""Score --dedup on an "on twos" clip made from the shipped clip, against the true full-rate frames.

    python tools/dedup_score.py --checkpoint assets/demo_student.pth

The clip keeps every other frame of the shipped clip and shows each twice (frames 0, 0, 2, 2, 4, 4, ...), as
animation drawn on twos; the truth is the shipped clip itself. Three 25 fps results are scored frame by frame:
the on-twos clip as it is (what any run without --dedup keeps: the held frames stay), the demo student with
``--dedup --fps 25`` and frame averaging with ``--dedup --fps 25``. Kept frames are untouched in all three (PSNR
capped at 80 dB), so the score is that of the held slots: per held frame and their mean, in dB.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.failures import run_script  # noqa: E402
from metrics.quality import calc_psnr  # noqa: E402
from pipeline.conversion import Conversion, convert  # noqa: E402
from video.readers import read_video_frames  # noqa: E402

CLIP = Path(__file__).resolve().parents[1] / "assets" / "bbb_448x256.mp4"


def psnr(truth: np.ndarray, frame: np.ndarray) -> float:
    as_tensor = (lambda image: torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].double() / 255)
    return calc_psnr(as_tensor(truth), as_tensor(frame)).item()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dedup_score.py", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="assets/demo_student.pth",
                        help="student weights; 'none' scores only the other two rows")
    parser.add_argument("--max_frames", type=int, default=None, help="use only the first N frames of the clip")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    return run_script(build_parser(), argv, score)


def score(args: argparse.Namespace) -> None:
    truth = read_video_frames(CLIP, args.max_frames)
    held = [index for index in range(len(truth)) if index % 2]
    with tempfile.TemporaryDirectory() as folder:
        on_twos = Path(folder) / "on_twos"
        on_twos.mkdir()
        for index in range(len(truth)):
            Image.fromarray(truth[index - index % 2]).save(on_twos / f"{index:04d}.png")
        results = {"no dedup (held frames stay)": [truth[index - index % 2] for index in range(len(truth))]}
        runs = {"--dedup, demo student": {"net": "student_STMFNet", "checkpoint": args.checkpoint},
                "--dedup, frame averaging": {"baseline": "average"}}
        if args.checkpoint == "none":
            del runs["--dedup, demo student"]
        for name, model in runs.items():
            output = Path(folder) / f"out_{len(results)}"
            with contextlib.redirect_stderr(io.StringIO()):
                summary = convert(Conversion(input=str(on_twos), output=str(output), device="cpu", input_fps=25.0,
                                             fps=Fraction(25), dedup=True, **model))
            print(f"{name}: {summary['held_frames_dropped']} held frames dropped, "
                  f"{summary['frames_synthesised']} synthesised, {summary['seconds']:.1f} s")
            results[name] = [np.asarray(Image.open(path)) for path in sorted(output.glob("*.png"))]
        scores = {name: [psnr(truth[index], frames[index]) for index in held] for name, frames in results.items()}
        print("held frame | " + " | ".join(scores))
        for position, index in enumerate(held):
            print(f"{index} | " + " | ".join(f"{scores[name][position]:.2f}" for name in scores))
        print("mean | " + " | ".join(f"{np.mean(values):.2f}" for values in scores.values()))


if __name__ == "__main__":
    sys.exit(main())
