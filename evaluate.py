"""Evaluate a frame interpolation network (or a trivial baseline) on one of the original test sets.

    python evaluate.py --net student_STMFNet --data_dir <dir> --checkpoint <pth> --out_dir eval_results \
        --dataset Ucf101_quintuplet
    python evaluate.py --baseline average --data_dir sample_data --dataset Davis90_quintuplet
    python evaluate.py --backend onnxruntime --onnx student.onnx --data_dir sample_data --dataset Davis90_quintuplet

Writes under <out_dir>/<dataset>/: every interpolated frame as a PNG (the original's file names and rounding),
results.txt byte for byte in the original's layout for that test set (pipeline/results_file.py), results.json (the
complete record: per-item and mean scores, timings, model, checkpoint SHA-256, device, versions) and log.txt; with
--save_grid also grids/<item>.png.
Existing results are never replaced without --overwrite, and --overwrite only replaces what evaluate.py wrote
(pipeline/output_folder.py); a second run into the same folder is refused while the first is running.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import torch

import data
import models
from common.failures import ScriptError, run_script
from common.files import file_sha256
from common.interpolator import Interpolator
from common.memory import allow_heap_reuse, heap_reuse_by_frame_size
from common.safe_write import atomic_write_text
from deploy.backends import Runtime, add_backend_arguments, onnx_interpolator, pytorch_interpolator
from deploy.cpu import accelerate
from deploy.onnx_runtime import OnnxOutputError
from models.stmfnet import ModelConfig
from pipeline import cli
from pipeline.evaluation import (
    BASELINES,
    METRIC_NAMES,
    EvaluationSummary,
    baseline_predictor,
    build_metrics,
    check_frames,
    evaluate,
    output_files,
)
from pipeline.output_folder import OutputFolder, check_output_location
from pipeline.run_paths import refuse_aliased_paths
from pipeline.results_file import results_text

DEFAULT_CHECKPOINT = "./models/stmfnet_mini.pth"  # the original's default
RESULT_FILES = ("results.txt", "results.json")
LOG_FILE = "log.txt"

logger = logging.getLogger("evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluate.py", description="Frame Interpolation Evaluation",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--net", type=str, default="student_STMFNet", choices=list(models.MODELS), metavar="NET",
                        help="network to evaluate: " + ", ".join(models.MODELS))
    parser.add_argument("--dataset", type=str, default="Davis90_quintuplet", choices=list(data.TEST_SETS),
                        metavar="NAME",
                        help="test set, read from its folder under --data_dir: " + ", ".join(data.TEST_SETS))
    parser.add_argument("--metrics", nargs="+", type=str, default=["PSNR", "SSIM"], choices=METRIC_NAMES,
                        help="metrics to compute; LPIPS needs the AlexNet weights locally")
    parser.add_argument("--data_dir", type=str, required=True,
                        help="folder holding ucf101/, davis90/, snufilm/, vfitex/")
    parser.add_argument("--out_dir", type=str, default="eval_results",
                        help="results go to <out_dir>/<dataset>/")

    cli.add_model_arguments(parser, finetune_pwc=False, finetune_pwc_help="no effect on evaluation")

    new_options = parser.add_argument_group("options added by this reimplementation")
    cli.add_device_arguments(parser, new_options)
    cli.add_checkpoint_arguments(parser, new_options, DEFAULT_CHECKPOINT,
                                 random_use="the scores are meaningless: smoke tests only")
    new_options.add_argument("--baseline", choices=BASELINES, default=None,
                             help="evaluate a trivial baseline instead of --net: 'average' of the two centre "
                                  "inputs, or 'repeat' of the earlier one; no checkpoint needed")
    add_backend_arguments(new_options)
    new_options.add_argument("--save_grid", action="store_true",
                             help="also write grids/<item>.png: centre inputs, output, ground truth, error map")
    new_options.add_argument("--overwrite", action="store_true",
                             help="replace the results of an earlier evaluate.py run in <out_dir>/<dataset>/ (a "
                                  "folder evaluate.py did not write is never touched)")
    new_options.add_argument("--debug", action="store_true",
                             help="on an error, show the traceback instead of the one-line message")
    return parser


def build_predictor(args: argparse.Namespace, device: torch.device) -> tuple[Interpolator, dict[str, Any]]:
    """The predictor asked for and what results.json records about it (model, route, weights file, its hash and
    epoch)."""
    record: dict[str, Any] = {"checkpoint": None, "checkpoint_sha256": None, "checkpoint_epoch": None}
    if args.baseline is not None:
        return baseline_predictor(args.baseline), {"model": f"baseline_{args.baseline}", **record}
    if args.backend == "onnxruntime":
        onnx_file = Path(args.onnx)
        interpolator = onnx_interpolator(onnx_file, device)
        record.update(model=interpolator.describe(), backend="onnxruntime", onnx=str(onnx_file.resolve()),
                      onnx_sha256=file_sha256(onnx_file))
        return interpolator, record
    checkpoint = cli.resolve_checkpoint(args.checkpoint, DEFAULT_CHECKPOINT, args.allow_random)
    loaded = cli.load_model(args.net, checkpoint, ModelConfig.from_args(args), device)
    record.update(model=args.net, backend="pytorch", precision=args.precision, compiled=args.compile,
                  random_weights=loaded.checkpoint is None)
    if loaded.checkpoint is not None:
        record.update(
            checkpoint=str(loaded.checkpoint.resolve()),
            checkpoint_sha256=file_sha256(loaded.checkpoint),
            checkpoint_epoch=loaded.epoch,
        )
    if args.precision == "fp32" and not args.compile:
        return accelerate(loaded.model), record  # the default route: the network (evaluate() runs it without autograd)
    return pytorch_interpolator(loaded.model, args.precision, args.compile), record


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def results_record(
    args: argparse.Namespace,
    argv: list[str],
    test_set: data.QuintupletTestSet,
    summary: EvaluationSummary,
    predictor_record: dict[str, Any],
    device: torch.device,
) -> dict[str, Any]:
    """Everything results.json holds."""
    per_sequence = len(summary.sequences) != len(summary.items)
    return {
        "dataset": args.dataset,
        "data_dir": str(Path(args.data_dir).resolve()),
        **predictor_record,
        "metrics": summary.metric_names,
        "averaging": "mean over sequences of per-sequence means" if per_sequence else "mean over items",
        "mean": summary.mean,
        "mean_over_items": summary.mean_over_items,
        "runtime_per_frame_s": summary.seconds_per_frame,
        "num_items": len(summary.items),
        "num_skipped_items": test_set.num_skipped,
        "sequences": summary.sequences,
        "items": [
            {
                "name": item.name,
                "sequence": item.sequence,
                "output_file": item.output_file,
                "scores": item.scores,
                "runtime_s": item.seconds,
                "load_s": item.load_seconds,
            }
            for item in summary.items
        ],
        "device": device_description(device),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": ["evaluate.py", *argv],
        "arguments": vars(args),
    }


def strict_json_values(value: Any, where: str = "") -> tuple[Any, dict[str, str]]:
    """``value`` with every NaN or infinite float replaced by None (JSON has no such numbers), and where each was."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, {where: str(value)}
    replaced: dict[str, str] = {}
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            result[key], found = strict_json_values(item, f"{where}.{key}" if where else str(key))
            replaced.update(found)
        return result, replaced
    if isinstance(value, (list, tuple)):
        result = []
        for index, item in enumerate(value):
            converted, found = strict_json_values(item, f"{where}[{index}]")
            result.append(converted)
            replaced.update(found)
        return result, replaced
    return value, replaced


def results_json(record: dict[str, Any]) -> str:
    """results.json as strict JSON: non-finite scores become null, listed under ``non_finite_values``."""
    values, replaced = strict_json_values(record)
    if replaced:
        values["non_finite_values"] = replaced
        logger.warning("%d values are not finite numbers (e.g. %s = %s); results.json holds null for them",
                       len(replaced), *next(iter(replaced.items())))
    return json.dumps(values, indent=2, allow_nan=False) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    """Run the evaluation; returns the exit status. Expected failures end in a one-line message (the traceback
    goes to log.txt once the output folder is claimed)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_script(build_parser(), argv, lambda args: run(args, argv))


def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Evaluate as the flags say; returns what was written to results.json."""
    dataset_dir = Path(args.out_dir) / args.dataset
    refuse_aliased_paths(vars(args), written={"--out_dir": dataset_dir})
    check_output_location(args.out_dir, "--out_dir")
    # Everything that can fail is checked before the first frame: output folder, device, metrics (LPIPS
    # weights), data, frame sizes, model.
    try:
        device = cli.select_device(args.device, args.gpu_id)
        metrics = build_metrics(args.metrics, device)
        test_set = data.build_test_set(args.dataset, args.data_dir)
        if args.baseline is None:
            Runtime.from_args(args).check(device)
    except (FileNotFoundError, ValueError) as error:
        raise ScriptError(str(error)) from error
    folder = OutputFolder(dataset_dir, "evaluate.py", "--out_dir",
                          [*output_files(test_set, args.save_grid), *RESULT_FILES, LOG_FILE])
    frame_folders = {path.parent for item in test_set.items for path in item.frame_paths}
    refuse_aliased_paths(vars(args), written={"--out_dir": dataset_dir},
                         read={"--data_dir": [test_set.root, *frame_folders]})
    folder.check(args.overwrite)
    check_frames(test_set, list(metrics))
    try:
        predict, predictor_record = build_predictor(args, device)
    except (FileNotFoundError, ValueError) as error:
        raise ScriptError(str(error)) from error

    with folder.claim(args.overwrite):
        cli.setup_logging(dataset_dir, LOG_FILE)
        if args.baseline is not None and args.checkpoint != DEFAULT_CHECKPOINT:
            logger.info("--baseline %s given: --net and --checkpoint are ignored", args.baseline)
        if predictor_record.get("random_weights"):
            logger.warning("%s has RANDOM weights (--allow_random): the scores are meaningless", args.net)
        logger.info(
            "Evaluating %s (%s) on %s: %d items from %s, device %s",
            predictor_record["model"], predictor_record.get("onnx") or f"checkpoint {predictor_record['checkpoint']}",
            args.dataset, len(test_set), test_set.root,
            device_description(device),
        )

        try:
            summary = evaluate(test_set, heap_reuse_by_frame_size(predict), metrics, device, output_dir=dataset_dir,
                               save_grid=args.save_grid)
        except OnnxOutputError as error:
            raise ScriptError(str(error)) from error

        record = results_record(args, argv, test_set, summary, predictor_record, device)
        text = results_text(summary, args.dataset)
        atomic_write_text(dataset_dir / "results.txt", text)
        atomic_write_text(dataset_dir / "results.json", results_json(record))
        folder.finish()
        logger.info("Results (%s):\n%s", record["averaging"], text.rstrip("\n"))
        logger.info("Runtime per frame: %.4f s; wrote %s", summary.seconds_per_frame, dataset_dir)
    return record


if __name__ == "__main__":
    allow_heap_reuse()
    sys.exit(main())
