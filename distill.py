"""Phase 2 of ST-MFNet Mini: distil the student from the frozen, trained teacher.

    python distill.py --teacher_dir stmfnet.pth --data_dir <dir> --distill_loss_fn 1*Lap --alpha 0.1

The loss is ``alpha * student_loss(student, ground truth) + distill_loss(student, teacher)``. The teacher from
``--teacher_dir`` runs without gradients, by default in training mode as in the original (its BatchNorm layers
normalise with the statistics of each batch; its stored statistics are left untouched), or with
``--teacher_mode eval`` on its stored statistics (pipeline/teacher.py). Flags, outputs and torchrun use are those
of train.py without the compression report; under torchrun every process holds its own copy of the frozen teacher
and, in training mode, normalises with its own batch.
"""
from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from common.failures import ScriptError, run_script
from common.files import file_sha256
from losses import DISTILLATION_LOSS_NAMES, DiscriminatorConfig, DistillationLoss, parse_loss_spec
from models import MODELS, get_model_class
from models.checkpoint import load_checkpoint
from optim import OPTIMIZERS
from pipeline.cli import checked_by, non_negative_float
from pipeline.run import TrainingOptions, add_training_arguments, retry_hint, start_run
from pipeline.teacher import TEACHER_MODES, FrozenTeacher
from pipeline.training import build_training_data, train

logger = logging.getLogger("distill")

# The original offered every optimizer but OBProxSG for distillation.
DISTILL_OPTIMIZERS = tuple(name for name in OPTIMIZERS if name != "OBProxSG")


def distillation_loss_spec(spec: str) -> list[tuple[float, str]]:
    """A loss spec of distill.py: any term of train.py and the distillation-only ones."""
    return parse_loss_spec(spec, DISTILLATION_LOSS_NAMES)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill.py",
                                     description="Distil ST-MFNet Mini (student) from ST-MFNet (teacher)")
    distillation = parser.add_argument_group("distillation")
    distillation.add_argument("--student", type=str, default="student_STMFNet", choices=list(MODELS),
                              help="network to train")
    distillation.add_argument("--teacher", type=str, default="STMFNet", choices=list(MODELS),
                              help="frozen network whose frames the student learns from")
    distillation.add_argument("--teacher_dir", type=str, default="./models/stmfnet.pth",
                              help="the teacher's checkpoint ({'epoch', 'state_dict'} or a bare state dict)")
    distillation.add_argument("--distill_loss_fn", type=checked_by(distillation_loss_spec), default="1*GAN",
                              help="loss spec between the student's and the teacher's frames: WEIGHT*NAME terms "
                                   "joined by '+', names " + ", ".join(DISTILLATION_LOSS_NAMES))
    distillation.add_argument("--student_loss_fn", type=checked_by(distillation_loss_spec), default="1*Lap",
                              help="loss spec between the student's frame and the ground truth (same names)")
    distillation.add_argument("--alpha", type=non_negative_float, default=0.1,
                              help="weight of the student loss; the distillation loss has weight 1")
    distillation.add_argument("--teacher_mode", choices=TEACHER_MODES, default="train",
                              help="train: the teacher's BatchNorm layers normalise with the statistics of each "
                                   "batch (the original's recipe; the stored statistics are not changed); eval: "
                                   "with the stored running statistics")
    add_training_arguments(
        parser, out_dir="./distill_results", optimizers=DISTILL_OPTIMIZERS, train_sets=("bvidvc", "vimeo"),
        load_help="student checkpoint to start from (weights only; its epoch number is not used)",
    )
    return parser


def load_teacher(args: argparse.Namespace, device: torch.device) -> FrozenTeacher:
    """The teacher from --teacher_dir, frozen, in --teacher_mode."""
    path = Path(args.teacher_dir)
    if not path.is_file():
        raise ScriptError(f"--teacher_dir {path} not found: give the trained {args.teacher} checkpoint")
    teacher = get_model_class(args.teacher)(args)
    try:
        load_checkpoint(teacher, path)
    except ValueError as error:  # damaged, not a checkpoint, another network's, non-finite weights
        raise ScriptError(f"--teacher_dir: {error}") from error
    logger.info("Teacher %s from %s (sha256 %s), %s mode", args.teacher, path, file_sha256(path), args.teacher_mode)
    return FrozenTeacher(teacher.to(device), args.teacher_mode)


def distillation_step(
    teacher: FrozenTeacher, student: nn.Module, loss: DistillationLoss, frames: Sequence[Tensor]
) -> tuple[Tensor, Tensor]:
    """One step's loss: the student's frame against the ground truth and the teacher's frame."""
    frame1, frame3, frame4, frame5, frame7 = frames
    teacher_frame = teacher(frame1, frame3, frame5, frame7)
    prediction = student(frame1, frame3, frame5, frame7)["frame1"]
    return loss(prediction, teacher_frame, frame4, inputs=(frame1, frame3, frame5, frame7)), prediction


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_script(build_parser(), argv, run_distillation, retry=lambda args: retry_hint(args.out_dir))


def run_distillation(args: argparse.Namespace) -> None:
    with start_run(TrainingOptions.from_args(args), vars(args), "distill.py") as run:
        logger.info("Distilling %s from %s on %s, seed %d", args.student, args.teacher, run.device, run.seed)
        data = build_training_data(run)
        teacher = load_teacher(args, run.device)
        student = get_model_class(args.student)(args)
        loss = DistillationLoss(args.student_loss_fn, args.distill_loss_fn, args.alpha,
                                DiscriminatorConfig(args.patch_size, args.optimizer, args.lr, args.weight_decay))
        step = functools.partial(distillation_step, teacher)
        train(run, data, student, loss, step, log_points=10, report_sparsity=False)


if __name__ == "__main__":
    sys.exit(main())
