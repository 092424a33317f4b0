"""What ``--precision bf16`` costs in quality: PSNR of float32 and bfloat16 outputs against the real middle frames.

    python tools/precision_check.py                                   # the demo student on the shipped clip
    python tools/precision_check.py --checkpoint stmfnet_mini.pth --windows 16

Windows of the clip at 256x448: frames k, k+2, k+4, k+6 in, frame k+3 as the ground truth, k spread evenly over
the clip, scored with evaluate.py's PSNR (of the frames rounded to 8 bits, as saved). Prints one line per window
and the means: PSNR of float32 and of bf16 against the ground truth, their difference, and the PSNR of the bf16
output against the float32 one (how far the two routes are apart).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch import Tensor

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import models  # noqa: E402
from common.failures import ScriptError, run_script  # noqa: E402
from deploy.backends import pytorch_interpolator  # noqa: E402
from metrics import calc_psnr  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from video.readers import read_video_frames  # noqa: E402

CLIP = REPO_ROOT / "assets" / "bbb_448x256.mp4"
DEMO_CHECKPOINT = REPO_ROOT / "assets" / "demo_student.pth"
WINDOW = (0, 2, 4, 6)  # input offsets; the target is frame k + 3
TARGET = 3


def psnr(output: Tensor, target: Tensor) -> float:
    return float(calc_psnr(target, output)[0])


def window_starts(frame_count: int, windows: int) -> list[int]:
    last = frame_count - 1 - WINDOW[-1]
    return sorted({round(index * last / max(windows - 1, 1)) for index in range(windows)})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="precision_check.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--net", default="student_STMFNet", choices=list(models.MODELS))
    parser.add_argument("--checkpoint", default=str(DEMO_CHECKPOINT), help="weights to compare the routes with")
    parser.add_argument("--windows", type=int, default=8, help="windows of the clip to score")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_script(build_parser(), argv, compare)


def compare(args: argparse.Namespace) -> None:
    if not Path(args.checkpoint).is_file():
        raise ScriptError(f"--checkpoint {args.checkpoint} not found")

    model = models.get_model_class(args.net)()
    load_checkpoint(model, args.checkpoint)
    model.eval()
    frames = clip_frames()
    rows = []
    print("window  fp32 dB  bf16 dB  bf16-fp32  bf16 vs fp32 output")
    for start in window_starts(len(frames), args.windows):
        row = compare_window(model, frames, start)
        rows.append(row)
        print(f"{start:6d}  {row[0]:7.3f}  {row[1]:7.3f}  {row[1] - row[0]:+9.4f}  {row[2]:8.2f}", flush=True)
    fp32_mean, bf16_mean, apart = (statistics.mean(column) for column in zip(*rows))
    print(f"mean    {fp32_mean:7.3f}  {bf16_mean:7.3f}  {bf16_mean - fp32_mean:+9.4f}  {apart:8.2f}")


def clip_frames() -> list[Tensor]:
    """The shipped clip as (1, 3, H, W) float32 frames in [0, 1]."""
    return [torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255 for frame in read_video_frames(CLIP)]


def compare_window(model: torch.nn.Module, frames: list[Tensor], start: int) -> tuple[float, float, float]:
    """PSNR of the float32 and the bf16 output against the real middle frame, and of bf16 against float32."""
    inputs = [frames[start + offset] for offset in WINDOW]
    target = frames[start + TARGET]
    fp32, bf16 = (pytorch_interpolator(model, precision)(*inputs) for precision in ("fp32", "bf16"))
    return psnr(fp32, target), psnr(bf16, target), psnr(bf16, fp32)


if __name__ == "__main__":
    sys.exit(main())
