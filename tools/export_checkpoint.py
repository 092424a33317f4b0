"""Turn a training run into a small checkpoint to ship: the weights plus how they were made.

    python tools/export_checkpoint.py --run train_results --out assets/demo_student.pth --data "what it saw"

Reads ``<run>/checkpoint/last.pth`` (written by train.py and distill.py) and writes ``{"epoch", "state_dict",
"metadata"}``, which evaluate.py, interpolate.py and ``models.checkpoint.load_checkpoint`` read like any checkpoint.
The metadata records the command that reproduces the run (its flags as saved in the checkpoint), the optimizer
steps, the epoch, the seed, the data description given here and the training wall time summed over the run's
sessions (from the timestamps of ``<run>/log.txt``, so time between a stop and a ``--resume`` does not count).
"""
from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.failures import ScriptError, run_script  # noqa: E402
from common.files import PathType  # noqa: E402
from common.safe_write import atomic_save  # noqa: E402
from models.checkpoint import read_torch_file  # noqa: E402
from pipeline.run_paths import refuse_aliased_paths  # noqa: E402

# The first line train.py and distill.py log in every session (a fresh start or a --resume).
SESSION_START = re.compile(r" INFO (Training|Distilling) .+ on \S+, seed \d+$")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
# Flags that describe where a run wrote or how it was continued, not what it trained (``--load`` is part of the
# recipe: a fine-tuned run starts from those weights).
NOT_RECIPE = {"out_dir", "resume", "max_steps", "gpu_id", "device", "num_workers"}
SCRIPT_OF_RUN = {True: "distill.py", False: "train.py"}


def _timestamp(line: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.strptime(line[:19], TIMESTAMP_FORMAT)
    except ValueError:
        return None


def training_seconds(log_text: str) -> float:
    """Wall time of the run: for each session, its first to its last timestamped line."""
    total = 0.0
    first = last = None
    for line in log_text.splitlines():
        stamp = _timestamp(line)
        if stamp is None:
            continue
        if SESSION_START.search(line):
            if first is not None:
                total += (last - first).total_seconds()
            first = stamp
        last = stamp
    if first is not None:
        total += (last - first).total_seconds()
    return total


def recipe_command(args: dict[str, Any]) -> str:
    """The command line of a run's training flags (defaults included, so it does not depend on later defaults)."""
    parts = ["python", SCRIPT_OF_RUN["teacher" in args]]
    for name, value in args.items():
        if name in NOT_RECIPE or value is None or value is False:
            continue
        if value is True:
            parts.append(f"--{name}")
        elif isinstance(value, (list, tuple)):
            parts.extend([f"--{name}", *(str(item) for item in value)])
        else:
            parts.extend([f"--{name}", str(value)])
    return " ".join(parts)


def export(run: PathType, out: PathType, data: str, started_from: Optional[str] = None) -> dict[str, Any]:
    """Write the checkpoint of ``run`` to ``out`` (never over an existing file); returns its metadata.
    ``started_from`` replaces the ``--load`` path the run saved (a path on the training machine) in the recipe."""
    run, out = Path(run), Path(out)
    last = run / "checkpoint" / "last.pth"
    if not last.is_file():
        raise ScriptError(f"{last} not found: --run must be the --out_dir of a train.py or distill.py run")
    if out.exists():
        raise ScriptError(f"--out {out} already exists; choose another --out")
    try:
        state = read_torch_file(last)
    except ValueError as error:
        raise ScriptError(f"--run: {error}") from error
    if not isinstance(state, dict) or not {"progress", "args", "model"} <= set(state):
        raise ScriptError(f"--run: {last} is not the last.pth of a train.py or distill.py run")
    progress, args = state["progress"], dict(state["args"])
    if started_from is not None:
        args["load"] = started_from
    log = run / "log.txt"
    metadata = {
        "command": recipe_command(args),
        "steps": int(progress["step"]),
        "epoch": int(progress["epoch"]),
        "seed": int(progress["seed"]),
        "items_per_step": int(args["batch_size"]) * int(progress.get("world_size", 1)),
        "data": data,
        "training_wall_time_s": round(training_seconds(log.read_text()) if log.is_file() else 0.0),
    }
    state_dict = {key: value.detach().clone() for key, value in state["model"].items()}
    atomic_save({"epoch": metadata["epoch"], "state_dict": state_dict, "metadata": metadata}, out, replace=False)
    return metadata


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export_checkpoint.py",
                                     description="Export a training run's weights with their metadata.")
    parser.add_argument("--run", type=Path, required=True, help="--out_dir of the train.py or distill.py run")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint file to write (must not exist)")
    parser.add_argument("--data", required=True, help="one line on what the run trained on")
    parser.add_argument("--started_from", default=None,
                        help="how the recipe names the weights the run was --load-ed from (default: the saved path)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_script(build_parser(), argv, export_run)


def export_run(args: argparse.Namespace) -> None:
    refuse_aliased_paths(vars(args))
    metadata = export(args.run, args.out, args.data, args.started_from)
    for name, value in metadata.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    sys.exit(main())
