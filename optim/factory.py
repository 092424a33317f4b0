"""Optimizer and learning-rate scheduler from the training scripts' arguments.

Option names and defaults are those of the original `utility.make_optimizer` /
`utility.make_scheduler`: --optimizer SGD | ADAM | ADAMax | RMSprop | OBProxSG with
--lr and --weight_decay; --decay_type step (StepLR every --lr_decay epochs),
step_A_B_... (MultiStepLR at epochs A, B, ...; as in the original, any value containing
"step", such as multistep_5_10, reads its milestones this way) or plateau
(ReduceLROnPlateau on the validation PSNR), each decaying by --gamma.
"""
from argparse import Namespace
from typing import Optional, Sized, Union

import torch
from torch import nn
from torch.optim import lr_scheduler

from optim.obproxsg import OBProxSG

OPTIMIZERS = ("SGD", "ADAM", "ADAMax", "RMSprop", "OBProxSG")


def make_optimizer(
    args: Namespace, model: nn.Module, steps_per_epoch: Union[int, Sized, None] = None
) -> torch.optim.Optimizer:
    """The optimizer named by ``args.optimizer`` over the model's trainable parameters.

    ``steps_per_epoch`` (the training loader's length; in a distributed run the length of
    each process's loader) is needed only by OBProxSG, whose phase schedule counts epochs.
    The loader itself is accepted too, as the original's ``train_loader`` argument: its ``len()`` is taken.
    """
    if steps_per_epoch is not None and not isinstance(steps_per_epoch, int):
        steps_per_epoch = len(steps_per_epoch)
    trainable = [param for param in model.parameters() if param.requires_grad]
    common = {"lr": args.lr, "weight_decay": args.weight_decay}
    if args.optimizer == "SGD":
        return torch.optim.SGD(trainable, momentum=0.9, **common)
    if args.optimizer == "ADAM":
        return torch.optim.Adam(trainable, betas=(0.9, 0.999), eps=1e-8, **common)
    if args.optimizer == "ADAMax":
        return torch.optim.Adamax(trainable, betas=(0.9, 0.999), eps=1e-8, **common)
    if args.optimizer == "RMSprop":
        return torch.optim.RMSprop(trainable, eps=1e-8, **common)
    if args.optimizer == "OBProxSG":
        if steps_per_epoch is None:
            raise ValueError("OBProxSG needs steps_per_epoch (the number of batches per epoch)")
        # Hyper-parameters of the original (lambda_ = L1 weight; eps and Np from AdaCoF's setup):
        # Prox-SG for the first tenth of the epochs, orthant steps afterwards.
        return OBProxSG(
            trainable,
            lambda_=1e-4,
            epochSize=steps_per_epoch,
            eps=1e-4,
            Np=int(args.epochs / 10),
            No="inf",
            **common,
        )
    raise ValueError(f"unknown optimizer {args.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")


def parse_decay_type(decay_type: str) -> tuple[str, list[int]]:
    """``--decay_type`` as ("step", []), ("multistep", [A, B, ...]) or ("plateau", []); ValueError if unknown.

    The original's rule: "step" is a decay every ``--lr_decay`` epochs, any other value containing "step" is
    NAME_A_B_... with milestones A, B, ... (e.g. step_10_30, multistep_5_10; the part before the first "_" is not
    read).
    """
    if decay_type in ("step", "plateau"):
        return decay_type, []
    if "step" in decay_type:
        try:
            milestones = [int(epoch) for epoch in decay_type.split("_")[1:]]
        except ValueError:
            milestones = []
        if not milestones:
            raise ValueError(
                f"--decay_type {decay_type!r}: expected step_A_B_... (or any name containing 'step' followed by "
                "_A_B_...) with integer epochs A, B, ..."
            )
        return "multistep", milestones
    raise ValueError(f"unknown --decay_type {decay_type!r}; valid: step, step_A_B_... (e.g. multistep_5_10), plateau")


def make_scheduler(args: Namespace, optimizer: torch.optim.Optimizer) -> lr_scheduler.LRScheduler:
    """The learning-rate schedule named by ``args.decay_type`` (see :func:`parse_decay_type`).

    Step it once per epoch; the plateau scheduler takes the validation PSNR (mode "max",
    improvements under 0.01 dB do not count).
    """
    kind, milestones = parse_decay_type(args.decay_type)
    if kind == "step":
        return lr_scheduler.StepLR(optimizer, step_size=args.lr_decay, gamma=args.gamma)
    if kind == "multistep":
        return lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=args.gamma)
    if args.patience is None:
        raise ValueError("--decay_type plateau needs --patience (epochs without improvement)")
    return lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="max",
        factor=args.gamma,
        patience=args.patience,
        threshold=0.01,
        threshold_mode="abs",
    )
