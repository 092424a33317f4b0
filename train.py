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
import logging
import sys
from typing import Optional, Sequence

from torch import Tensor, nn

from common.failures import run_script
from losses import DiscriminatorConfig, Loss, parse_loss_spec
from models import MODELS, get_model_class
from optim import OPTIMIZERS
from pipeline.cli import checked_by
from pipeline.run import TrainingOptions, add_training_arguments, retry_hint, start_run
from pipeline.training import build_training_data, train

logger = logging.getLogger("train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train.py",
                                     description="Train ST-MFNet or ST-MFNet Mini (phase 1: --optimizer OBProxSG)")
    parser.add_argument("--net", type=str, default="STMFNet", choices=list(MODELS), help="network to train")
    parser.add_argument("--loss", type=checked_by(parse_loss_spec), default="1*Lap",
                        help="loss spec: '+'-separated WEIGHT*NAME terms, e.g. 1*Lap or 1*Lap+0.01*FI_GAN")
    add_training_arguments(
        parser, out_dir="./train_results", optimizers=OPTIMIZERS, train_sets=("vimeo", "bvidvc"),
        load_help="checkpoint to start from (weights only; its epoch number is not used)",
    )
    return parser


def training_step(model: nn.Module, loss: Loss, frames: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """One step's loss: the model's frame against the ground truth (frame4)."""
    frame1, frame3, frame4, frame5, frame7 = frames
    prediction = model(frame1, frame3, frame5, frame7)["frame1"]
    return loss(prediction, frame4, inputs=(frame1, frame3, frame5, frame7)), prediction


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_script(build_parser(), argv, run_training, retry=lambda args: retry_hint(args.out_dir))


def run_training(args: argparse.Namespace) -> None:
    with start_run(TrainingOptions.from_args(args), vars(args), "train.py") as run:
        logger.info("Training %s on %s, seed %d", args.net, run.device, run.seed)
        data = build_training_data(run)
        model = get_model_class(args.net)(args)
        loss = Loss(args.loss, DiscriminatorConfig(args.patch_size, args.optimizer, args.lr, args.weight_decay))
        train(run, data, model, loss, training_step, log_points=20, report_sparsity=True)


if __name__ == "__main__":
    sys.exit(main())
