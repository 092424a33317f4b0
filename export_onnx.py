"""Export ST-MFNet (teacher) or ST-MFNet Mini (student) to an ONNX file that any ONNX runtime can run.

    python export_onnx.py --net student_STMFNet --checkpoint stmfnet_mini.pth --out student.onnx
    python export_onnx.py --net STMFNet --checkpoint stmfnet.pth --out teacher.onnx

Inputs I0, I1, I2, I3: four N x 3 x H x W float32 frames in [0, 1] in temporal order; output ``middle``: the
N x 3 x H x W frame halfway between I1 and I2. Batch, height and width are dynamic (the padding to a multiple of
128 is inside the graph). Standard operators only (opset 18); the ONNX checker runs before the file is written.
Run it with ``interpolate.py --backend onnxruntime --onnx student.onnx`` or any ONNX runtime.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional

import onnx
import torch

from common.failures import ScriptError, run_script
import models
from common.safe_write import atomic_write_to
from deploy.onnx_export import OPSET, export_model
from models.checkpoint import load_checkpoint
from pipeline.cli import add_model_arguments
from pipeline.run_paths import refuse_aliased_paths

logger = logging.getLogger("export_onnx")

MIN_OPSET = 16


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export_onnx.py", description="Export a model to ONNX",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--net", default="student_STMFNet", choices=list(models.MODELS), help="network to export")
    parser.add_argument("--checkpoint", type=str, default=None,
                        help="trained weights, {'epoch', 'state_dict'} or a bare state dict")
    parser.add_argument("--allow_random", action="store_true",
                        help="export random weights when no --checkpoint is given (timing and tests only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights of --allow_random")
    parser.add_argument("--out", type=str, required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=OPSET, help="ONNX opset (16 or later)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_model_arguments(parser, finetune_pwc=False, finetune_pwc_help="accepted for compatibility; no effect")
    return parser


def check_arguments(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    if args.checkpoint is None and not args.allow_random:
        raise ValueError("--checkpoint PATH is required (or --allow_random to export random weights)")
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"--checkpoint {args.checkpoint} not found")
    if not MIN_OPSET <= args.opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"--opset must be {MIN_OPSET} (ScatterElements with reduction) to "
                         f"{onnx.defs.onnx_opset_version()} (the newest the installed onnx knows), got {args.opset}")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as {out / 'model.onnx'}")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"--out {out} exists; pass --overwrite to replace it")
    if not out.parent.resolve().is_dir():
        raise FileNotFoundError(f"the folder of --out {out} does not exist")
    return out


def main(argv: Optional[list[str]] = None) -> int:
    return run_script(build_parser(), argv, export)


def export(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        refuse_aliased_paths(vars(args))
        out = check_arguments(args)
        torch.manual_seed(args.seed)
        model = models.get_model_class(args.net)(args)
        if args.checkpoint is not None:
            load_checkpoint(model, args.checkpoint)
            logger.info("loaded %s weights from %s", args.net, args.checkpoint)
        else:
            logger.warning("%s has RANDOM weights (--allow_random, seed %d)", args.net, args.seed)
    except (OSError, ValueError) as error:
        raise ScriptError(str(error)) from error
    try:
        atomic_write_to(out, lambda path: export_model(model, path, opset=args.opset, network=args.net),
                        replace=args.overwrite)
    except ValueError as error:
        raise ScriptError(str(error)) from error
    logger.info("wrote %s (%.1f MB, opset %d)", out, out.stat().st_size / 2**20, args.opset)


if __name__ == "__main__":
    sys.exit(main())
