"""Train a network of the zoo; phase 1 of ST-MFNet Mini is this script on the teacher with OBProxSG.

    python train.py --load <stmfnet.pth> --data_dir <dir> --out_dir ./train_results --epochs 20 --optimizer OBProxSG

Flags and defaults are the original's (``--optimizer OBProxSG`` makes the weights sparse; the compression report
``sparsity.json`` / ``sparsity.png`` and the suggested channel widths show which layers can shrink), plus the new
``--device``, ``--seed``, ``--num_workers``, ``--train_sets``, ``--samples_per_epoch``, ``--max_steps`` and
``--resume``, ``--sync_bn``. Writes to ``--out_dir``: log.txt, config.txt, curves.png, sparsity.json,
sparsity.png, ``density results.txt`` and checkpoint/ (``model_epochNNN.pth`` and ``last.pth``).

On several GPUs or machines: ``torchrun --nproc_per_node N train.py ...`` (DistributedDataParallel,
``pipeline/distributed.py``); ``--batch_size`` is then per process and only rank 0 writes.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from torch import Tensor, nn

from losses import DiscriminatorConfig, Loss
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train ST-MFNet or ST-MFNet Mini (phase 1: --optimizer OBProxSG)")
    parser.add_argument("--net", type=str, default="STMFNet", choices=list(MODELS), help="network to train")
    parser.add_argument("--loss", type=str, default="1*Lap",
                        help="loss spec: '+'-separated WEIGHT*NAME terms, e.g. 1*Lap or 1*Lap+0.01*FI_GAN")
    add_training_arguments(
        parser, out_dir="./train_results", optimizers=OPTIMIZERS, train_sets=("vimeo", "bvidvc"),
        load_help="checkpoint to start from (weights only; see README: the original also took its epoch number)",
    )
    return parser


def make_step_function(model: nn.Module, loss: Loss) -> StepFunction:
    """One training step's loss: the model's frame against the ground truth (frame4)."""

    def step(frames: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        frame1, frame3, frame4, frame5, frame7 = frames
        prediction = model(frame1, frame3, frame5, frame7)["frame1"]
        return loss(prediction, frame4, inputs=(frame1, frame3, frame5, frame7)), prediction

    return step


def main(argv: Optional[Sequence[str]] = None) -> int:
    with start_run(build_parser(), argv) as (args, logger, device, resume_state, seed):
        logger.info("Training %s on %s, seed %d", args.net, device, seed)

        # Data: the training sets concatenated (or sampled), and the Vimeo-90K test list for validation.
        data = build_training_data(args, seed)
        steps_per_epoch = data.steps_per_epoch

        # Model, loss (with the discriminators of adversarial terms), optimizer and schedule.
        model = get_model_class(args.net)(args).to(device)
        if args.sync_bn:
            model = use_sync_batchnorm(model, device)
        load_starting_weights(model, args, resumed=resume_state is not None)
        discriminators = DiscriminatorConfig(args.patch_size, args.optimizer, args.lr, args.weight_decay)
        loss = Loss(args.loss, discriminators).to(device)
        optimizer = make_optimizer(args, model, steps_per_epoch)
        scheduler = make_scheduler(args, optimizer)
        logger.info("Loss %s, optimizer %s", loss.extra_repr(), type(optimizer).__name__)

        progress, trained_model = prepare_run(args, seed, steps_per_epoch, resume_state, model=model,
                                              optimizer=optimizer, scheduler=scheduler, loss=loss, device=device)

        loop = TrainingLoop(
            model=model, step_function=make_step_function(trained_model, loss), loss=loss, optimizer=optimizer,
            scheduler=scheduler, train_loader=data.train_loader, sampler=data.sampler,
            valid_loader=data.valid_loader, device=device,
            args=args, progress=progress, log_points=20, report_sparsity=True,
        )
        return loop.run_to_exit_status()


if __name__ == "__main__":
    sys.exit(main())
