"""Parameter counts of the teacher and the student, and their eval-mode forward time.

    python tools/model_stats.py                       # CPU, 256x448, batch 1, median of 3 runs after a warm-up
    python tools/model_stats.py --device cuda --runs 10

Prints one JSON object. Weights are random (the timing does not depend on them).
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="torch device to time on")
    parser.add_argument("--height", type=int, default=256, help="frame height")
    parser.add_argument("--width", type=int, default=448, help="frame width")
    parser.add_argument("--runs", type=int, default=3, help="timed forward passes (after one warm-up)")
    return parser


def parameter_counts(model: torch.nn.Module) -> dict:
    parameters = list(model.parameters())
    return {
        "trainable": sum(p.numel() for p in parameters if p.requires_grad),
        "total": sum(p.numel() for p in parameters),
    }


def forward_seconds(model: torch.nn.Module, frames: list, runs: int) -> float:
    def synchronise():
        if frames[0].is_cuda:
            torch.cuda.synchronize()

    times = []
    with torch.no_grad():
        for run in range(runs + 1):
            synchronise()
            start = time.perf_counter()
            model(*frames)
            synchronise()
            if run:  # the first pass warms up allocators and kernel caches
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    args = build_parser().parse_args()
    torch.manual_seed(0)
    frames = [torch.rand(1, 3, args.height, args.width, device=args.device) for _ in range(4)]
    report = {"device": args.device, "size": [args.height, args.width], "threads": torch.get_num_threads()}
    for name in models.MODELS:
        model = models.get_model_class(name)().to(args.device).eval()
        report[name] = {**parameter_counts(model), "forward_s": round(forward_seconds(model, frames, args.runs), 3)}
    teacher, student = report["STMFNet"], report["student_STMFNet"]
    report["student_over_teacher"] = {
        key: round(student[key] / teacher[key], 4) for key in ("trainable", "total", "forward_s")
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
