"""Optimizer and learning-rate scheduler of the training scripts' flags, taken as values (``utility.py`` keeps
the original's ``make_optimizer(args, model, train_loader)`` / ``make_scheduler(args, optimizer)``).

The options are those of the original: --optimizer SGD | ADAM | ADAMax | RMSprop | OBProxSG with
--lr and --weight_decay; --decay_type step (StepLR every --lr_decay epochs),
step_A_B_... (MultiStepLR at epochs A, B, ...; as in the original, any value containing
"step", such as multistep_5_10, reads its milestones this way) or plateau
(ReduceLROnPlateau on the validation PSNR), each decaying by --gamma.
"""
from typing import Optional, Sized, Union

import torch
from torch import nn
from torch.optim import lr_scheduler

from optim.obproxsg import OBProxSG

OPTIMIZERS = ("SGD", "ADAM", "ADAMax", "RMSprop", "OBProxSG")


def make_optimizer(
    model: nn.Module, name: str, lr: float, weight_decay: float = 0.0, epochs: Optional[int] = None,
    steps_per_epoch: Union[int, Sized, None] = None,
) -> torch.optim.Optimizer:
    """The optimizer ``name`` (--optimizer) over the model's trainable parameters.

    ``epochs`` and ``steps_per_epoch`` (the training loader's length; in a distributed run the length of each
    process's loader) are needed only by OBProxSG, whose phase schedule counts epochs. The loader itself is
    accepted too, as the original's ``train_loader`` argument: its ``len()`` is taken.
    """
    if steps_per_epoch is not None and not isinstance(steps_per_epoch, int):
        steps_per_epoch = len(steps_per_epoch)
    trainable = [param for param in model.parameters() if param.requires_grad]
    common = {"lr": lr, "weight_decay": weight_decay}
    if name == "SGD":
        return torch.optim.SGD(trainable, momentum=0.9, **common)
    if name == "ADAM":
        return torch.optim.Adam(trainable, betas=(0.9, 0.999), eps=1e-8, **common)
    if name == "ADAMax":
        return torch.optim.Adamax(trainable, betas=(0.9, 0.999), eps=1e-8, **common)
    if name == "RMSprop":
        return torch.optim.RMSprop(trainable, eps=1e-8, **common)
    if name == "OBProxSG":
        if steps_per_epoch is None or epochs is None:
            raise ValueError("OBProxSG needs epochs and steps_per_epoch (the number of batches per epoch)")
        # Hyper-parameters of the original (lambda_ = L1 weight; eps and Np from AdaCoF's setup):
        # Prox-SG for the first tenth of the epochs, orthant steps afterwards.
        return OBProxSG(
            trainable,
            lambda_=1e-4,
            epochSize=steps_per_epoch,
            eps=1e-4,
            Np=int(epochs / 10),
            No="inf",
            **common,
        )
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")


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


def make_scheduler(
    optimizer: torch.optim.Optimizer, decay_type: str, gamma: float, lr_decay: Optional[int] = None,
    patience: Optional[int] = None,
) -> lr_scheduler.LRScheduler:
    """The learning-rate schedule ``decay_type`` (--decay_type, see :func:`parse_decay_type`) decaying by
    ``gamma``, every ``lr_decay`` epochs for "step", after ``patience`` epochs without improvement for "plateau".

    Step it once per epoch; the plateau scheduler takes the validation PSNR (mode "max",
    improvements under 0.01 dB do not count).
    """
    kind, milestones = parse_decay_type(decay_type)
    if kind == "step":
        return lr_scheduler.StepLR(optimizer, step_size=lr_decay, gamma=gamma)
    if kind == "multistep":
        return lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
    if patience is None:
        raise ValueError("--decay_type plateau needs --patience (epochs without improvement)")
    return lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="max",
        factor=gamma,
        patience=patience,
        threshold=0.01,
        threshold_mode="abs",
    )
