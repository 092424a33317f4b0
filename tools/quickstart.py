"""The whole method, in miniature, on the shipped sample clip (CPU, a few minutes).

    python tools/quickstart.py [--out quickstart] [--distill_steps 20]

1. sample data: every dataset layout cut from assets/bbb_448x256.mp4 (built once, reused afterwards);
2. phase 1: a few OBProxSG steps on the teacher (train.py; no pretrained weights are shipped, so it starts from
   random ones);
3. phase 2: a short distillation of the student from that teacher (distill.py);
4. evaluate.py of the distilled student and of the two baselines on Ucf101_quintuplet and Davis90_quintuplet,
   then a table of the results.

Each run writes into a new folder <out>/run-<time>, so nothing of an earlier run is touched. With random starting
weights and a few steps the numbers show that the pipeline works end to end, not the quality of the method.
"""
import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("Ucf101_quintuplet", "Davis90_quintuplet")


def run(step: str, *command: str) -> None:
    print(f"\n=== {step}\n$ python {' '.join(command)}", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, *command], cwd=REPO_ROOT, check=True)
    print(f"=== {step}: {time.perf_counter() - start:.0f} s", flush=True)


def latest_epoch_checkpoint(out_dir: Path) -> Path:
    checkpoints = sorted((out_dir / "checkpoint").glob("model_epoch*.pth"))
    if not checkpoints:
        raise FileNotFoundError(f"no model_epochNNN.pth in {out_dir / 'checkpoint'}")
    return checkpoints[-1]


def results_table(eval_dirs: dict[str, Path]) -> str:
    header = "| method | " + " | ".join(f"{name} PSNR / SSIM" for name in DATASETS) + " |"
    lines = [header, "|" + " --- |" * (len(DATASETS) + 1)]
    for method, eval_dir in eval_dirs.items():
        cells = []
        for dataset in DATASETS:
            mean = json.loads((eval_dir / dataset / "results.json").read_text())["mean"]
            cells.append(f"{mean['PSNR']:.2f} / {mean['SSIM']:.3f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("quickstart"), help="folder for sample data and runs")
    parser.add_argument("--teacher_steps", type=int, default=3, help="OBProxSG steps on the teacher (phase 1)")
    parser.add_argument("--distill_steps", type=int, default=20, help="distillation steps (phase 2)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    out = args.out.resolve()
    sample = out / "sample_data"
    run_dir = out / f"run-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    common = ["--data_dir", str(sample), "--patch_size", "128", "--batch_size", "1", "--seed", "0",
              "--device", args.device]
    start = time.perf_counter()

    if not (sample / "vimeo_septuplet").is_dir():
        run("sample data", "-m", "data.make_sample", "--out", str(sample))
    # A tiny learning rate: Prox-SG is plain SGD on the summed Laplacian loss, which diverges from random weights.
    run("phase 1: OBProxSG on the teacher", "train.py", "--net", "STMFNet", "--optimizer", "OBProxSG",
        "--lr", "1e-7", "--out_dir", str(run_dir / "phase1"), "--max_steps", str(args.teacher_steps), *common)
    teacher = latest_epoch_checkpoint(run_dir / "phase1")
    run("phase 2: distillation", "distill.py", "--student", "student_STMFNet", "--teacher", "STMFNet",
        "--teacher_dir", str(teacher), "--distill_loss_fn", "1*Lap", "--student_loss_fn", "1*Lap", "--alpha", "0.1",
        "--optimizer", "ADAMax", "--out_dir", str(run_dir / "phase2"), "--max_steps", str(args.distill_steps),
        *common)
    student = latest_epoch_checkpoint(run_dir / "phase2")

    eval_dirs = {
        "student_STMFNet (quickstart)": run_dir / "eval_student",
        "frame averaging": run_dir / "eval_average",
        "frame repetition": run_dir / "eval_repeat",
    }
    for dataset in DATASETS:
        base = ["evaluate.py", "--dataset", dataset, "--data_dir", str(sample), "--device", args.device]
        run(f"evaluate student on {dataset}", *base, "--net", "student_STMFNet", "--checkpoint", str(student),
            "--out_dir", str(eval_dirs["student_STMFNet (quickstart)"]))
        for baseline in ("average", "repeat"):
            method = "frame averaging" if baseline == "average" else "frame repetition"
            run(f"evaluate {baseline} baseline on {dataset}", *base, "--baseline", baseline,
                "--out_dir", str(eval_dirs[method]))

    print(f"\nResults on the sample data (run folder {run_dir}, {time.perf_counter() - start:.0f} s in all):\n")
    print(results_table(eval_dirs))


if __name__ == "__main__":
    main()
