"""Phase 2 of ST-MFNet Mini: distil the student from the frozen, trained teacher.

    python distill.py --student student_STMFNet --teacher STMFNet --distill_loss_fn "1*Lap" \
        --student_loss_fn "1*Lap" --alpha 0.1 --data_dir <dir> --out_dir ./distill_results --optimizer ADAMax

The loss is ``alpha * student_loss(student, ground truth) + distill_loss(student, teacher)``. The teacher comes
from ``--teacher_dir`` and runs in eval mode without gradients (the original ran it in training mode with
autograd, which updated its batch-norm statistics and wasted memory). Flags and defaults are the original's plus
those listed in train.py; the outputs too, without the compression report.

On several GPUs or machines: ``torchrun --nproc_per_node N distill.py ...``; the student trains under
DistributedDataParallel and every process holds its own copy of the frozen teacher (it has nothing to
synchronise). ``--batch_size`` is then per process and only rank 0 writes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from losses import DISTILLATION_LOSS_NAMES, DiscriminatorConfig, DistillationLoss
from models import MODELS, get_model_class
from optim import OPTIMIZERS, make_optimizer, make_scheduler
from pipeline.distributed import use_sync_batchnorm
from pipeline.training import (
    StepFunction,
    TrainingLoop,
    add_training_arguments,
    build_training_data,
    load_starting_weights,
    prepare_run,
    start_run,
)
from utility import file_sha256, load_checkpoint

# The original offered every optimizer but OBProxSG for distillation.
DISTILL_OPTIMIZERS = tuple(name for name in OPTIMIZERS if name != "OBProxSG")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Distil ST-MFNet Mini (student) from ST-MFNet (teacher)")
    distillation = parser.add_argument_group("distillation")
    distillation.add_argument("--student", type=str, default="student_STMFNet", choices=list(MODELS),
                              help="network to train")
    distillation.add_argument("--teacher", type=str, default="STMFNet", choices=list(MODELS),
                              help="frozen network whose frames the student learns from")
    distillation.add_argument("--teacher_dir", type=str, default="./models/stmfnet.pth",
                              help="the teacher's checkpoint ({'epoch', 'state_dict'} or a bare state dict)")
    distillation.add_argument("--distill_loss_fn", type=str, default="1*GAN",
                              help="loss spec between the student's and the teacher's frames: WEIGHT*NAME terms "
                                   "joined by '+', names " + ", ".join(DISTILLATION_LOSS_NAMES))
    distillation.add_argument("--student_loss_fn", type=str, default="1*Lap",
                              help="loss spec between the student's frame and the ground truth (same names)")
    distillation.add_argument("--alpha", type=float, default=0.1,
                              help="weight of the student loss; the distillation loss has weight 1 (the original's "
                                   "help said 1 - alpha, its code used 1)")
    add_training_arguments(
        parser, out_dir="./distill_results", optimizers=DISTILL_OPTIMIZERS, train_sets=("bvidvc", "vimeo"),
        load_help="student checkpoint to start from (weights only; see README: the original also took its epoch "
                  "number)",
    )
    return parser


def load_teacher(args: argparse.Namespace, device: torch.device) -> nn.Module:
    """The teacher from --teacher_dir, frozen and in eval mode."""
    path = Path(args.teacher_dir)
    if not path.is_file():
        raise FileNotFoundError(f"--teacher_dir {path} not found: give the trained {args.teacher} checkpoint")
    teacher = get_model_class(args.teacher)(args)
    load_checkpoint(teacher, path)
    return teacher.to(device).eval().requires_grad_(False)


def make_step_function(student: nn.Module, teacher: nn.Module, loss: DistillationLoss) -> StepFunction:
    """One distillation step's loss: the student's frame against the ground truth and the teacher's frame."""

    def step(frames: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        frame1, frame3, frame4, frame5, frame7 = frames
        with torch.no_grad():
            teacher_frame = teacher(frame1, frame3, frame5, frame7)
        prediction = student(frame1, frame3, frame5, frame7)["frame1"]
        value = loss(prediction, teacher_frame, frame4, inputs=(frame1, frame3, frame5, frame7))
        return value, prediction

    return step


def main(argv: Optional[Sequence[str]] = None) -> int:
    with start_run(build_parser(), argv) as (args, logger, device, resume_state, seed):
        logger.info("Distilling %s from %s on %s, seed %d", args.student, args.teacher, device, seed)

        # Data: the training sets concatenated (or sampled), and the Vimeo-90K test list for validation.
        data = build_training_data(args, seed)
        steps_per_epoch = data.steps_per_epoch

        # Teacher (frozen), student, loss (with the discriminators of adversarial terms), optimizer and schedule.
        teacher = load_teacher(args, device)
        logger.info("Teacher %s from %s (sha256 %s)", args.teacher, args.teacher_dir, file_sha256(args.teacher_dir))
        student = get_model_class(args.student)(args).to(device)
        if args.sync_bn:
            student = use_sync_batchnorm(student, device)
        load_starting_weights(student, args, resumed=resume_state is not None)
        loss = DistillationLoss(
            args.student_loss_fn, args.distill_loss_fn, args.alpha,
            DiscriminatorConfig(args.patch_size, args.optimizer, args.lr, args.weight_decay),
        ).to(device)
        optimizer = make_optimizer(args, student, steps_per_epoch)
        scheduler = make_scheduler(args, optimizer)
        logger.info("Loss %g * (%s) + (%s), optimizer %s", args.alpha, loss.student_loss.extra_repr(),
                    loss.distill_loss.extra_repr(), type(optimizer).__name__)

        progress, trained_student = prepare_run(args, seed, steps_per_epoch, resume_state, model=student,
                                                optimizer=optimizer, scheduler=scheduler, loss=loss, device=device)

        loop = TrainingLoop(
            model=student, step_function=make_step_function(trained_student, teacher, loss), loss=loss,
            optimizer=optimizer,
            scheduler=scheduler, train_loader=data.train_loader, sampler=data.sampler,
            valid_loader=data.valid_loader, device=device,
            args=args, progress=progress, log_points=10, report_sparsity=False,
        )
        return loop.run_to_exit_status()


if __name__ == "__main__":
    sys.exit(main())
