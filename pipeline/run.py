"""The start of a train.py or distill.py run: the flags both scripts share, then :func:`start_run`, which checks
them, joins the process group of a torchrun job, sets up logging, reads ``last.pth`` for ``--resume`` and seeds
every generator, yielding one :class:`Run`."""
from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import random
import secrets
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch

from common.failures import ScriptError
from common.files import PathType
from common.safe_write import append_text_atomically
from data import TRAINING_SETS
from pipeline import distributed
from models.pwcnet import Network as PWCNet
from optim import parse_decay_type
from pipeline.checkpoints import (
    check_same_networks,
    checkpoint_dir,
    last_checkpoint_path,
    load_last_checkpoint,
    without_last_checkpoint,
)
from pipeline.cli import add_device_arguments, add_model_arguments, checked_by, non_negative_float, setup_logging
from pipeline.output_folder import check_output_location
from pipeline.run_paths import refuse_aliased_paths

logger = logging.getLogger(__name__)

# Crops are halved four times by the Laplacian loss, whose 5x5 blur needs 3 pixels at 1/8 scale.
PATCH_MULTIPLE = 16
MIN_PATCH_SIZE = 32


@dataclass(frozen=True)
class TrainingOptions:
    """The flags of :func:`add_training_arguments` that the run reads, as the parser gives them (``train.py
    --help`` describes each and holds the defaults)."""

    data_dir: str
    out_dir: str
    train_sets: Sequence[str]
    patch_size: int
    batch_size: int
    samples_per_epoch: Optional[int]
    num_workers: int
    epochs: int
    max_steps: Optional[int]
    optimizer: str
    lr: float
    weight_decay: float
    decay_type: str
    lr_decay: int
    gamma: float
    patience: Optional[int]
    load: Optional[str]
    resume: bool
    seed: Optional[int]
    sync_bn: bool
    pwc_weights: Optional[str]
    device: str
    gpu_id: int

    @classmethod
    def from_args(cls, args: Any) -> TrainingOptions:
        """The options of a training script's parsed flags (any object with the attributes)."""
        return cls(**{item.name: getattr(args, item.name) for item in fields(cls)})


@dataclass(frozen=True)
class Run:
    """A started run: its options, every flag of its script by name (recorded in config.txt and ``last.pth``),
    this process's device, the seed of every generator, and the contents of ``last.pth`` when it continues an
    earlier run (``--resume``), else None."""

    options: TrainingOptions
    flags: dict[str, Any]
    device: torch.device
    seed: int
    resume_state: Optional[dict[str, Any]]

    @property
    def resumed(self) -> bool:
        return self.resume_state is not None


def add_training_arguments(
    parser: argparse.ArgumentParser,
    *,
    out_dir: str,
    optimizers: Sequence[str],
    load_help: str,
    train_sets: Sequence[str],
) -> None:
    """The flags train.py and distill.py share: the original ones with their defaults, then the new ones.

    ``train_sets`` is the script's default order of the training sets (the original's: Vimeo first in train.py,
    BVI-DVC first in distill.py).
    """

    directories = parser.add_argument_group("directories")
    directories.add_argument("--data_dir", type=str, required=True,
                             help="folder holding vimeo_septuplet/ and bvidvc/")
    directories.add_argument("--out_dir", type=str, default=out_dir,
                             help="log.txt, config.txt, reports and checkpoint/ are written here")
    directories.add_argument("--load", type=str, default=None, help=load_help)

    learning = parser.add_argument_group("learning options")
    learning.add_argument("--epochs", type=int, default=70, help="total number of epochs of the run")
    learning.add_argument("--batch_size", type=int, default=2,
                          help="batch size of each process (training and validation): a torchrun run of N processes "
                               "takes N x this many items per step")
    learning.add_argument("--patch_size", type=patch_size, default=256,
                          help="side of the random square crops (training) and fixed crops (validation)")

    optimization = parser.add_argument_group("optimization")
    optimization.add_argument("--lr", type=non_negative_float, default=0.001, help="learning rate")
    optimization.add_argument("--lr_decay", type=int, default=20, help="step decay: multiply the rate by --gamma "
                              "every N epochs")
    optimization.add_argument("--decay_type", type=checked_by(parse_decay_type), default="step",
                              help="step, step_A_B_... (decay at epochs A, B, ...; any name containing 'step', "
                                   "e.g. multistep_5_10) or plateau (on validation PSNR)")
    optimization.add_argument("--gamma", type=float, default=0.5, help="learning rate decay factor")
    optimization.add_argument("--patience", type=int, default=None,
                              help="plateau: epochs without PSNR improvement before the rate is reduced")
    optimization.add_argument("--optimizer", default="ADAMax", choices=tuple(optimizers),
                              help=f"optimizer ({' | '.join(optimizers)})")
    optimization.add_argument("--weight_decay", type=float, default=0, help="weight decay (ignored by OBProxSG)")

    add_model_arguments(parser, finetune_pwc=True,
                        finetune_pwc_help="train the teacher's PWC-Net (a store_true flag that defaults to True, so "
                                          "it is always on)")

    new = parser.add_argument_group("options added by this reimplementation")
    add_device_arguments(parser, new, gpu_help="CUDA device index used when the device is a GPU (under torchrun "
                                               "every process takes the GPU numbered by its LOCAL_RANK instead)")
    new.add_argument("--pwc_weights", type=str, default=None,
                     help="pytorch-pwc '.pytorch' file to start the teacher's PWC-Net from (default: random "
                          "initialisation, replaced anyway by --load or --teacher_dir)")
    new.add_argument("--seed", type=int, default=None,
                     help="seed of weights initialisation, data order and augmentation (default: a random seed, "
                          "logged and saved so the run can be resumed or repeated)")
    new.add_argument("--num_workers", type=int, default=0, help="DataLoader worker processes")
    new.add_argument("--train_sets", nargs="+", choices=TRAINING_SETS, default=list(train_sets),
                     help="training sets under --data_dir, concatenated in this order; a missing set is an error "
                          "unless left out here")
    new.add_argument("--samples_per_epoch", type=int, default=None,
                     help="draw this many random items per epoch (a set chosen in proportion to its size, then an "
                          "item) instead of one pass over all items (the default)")
    new.add_argument("--max_steps", type=int, default=None,
                     help="stop after this many optimizer steps in total, counting steps done before a --resume; "
                          "the run ends with validation and checkpoints as at an epoch end")
    new.add_argument("--resume", action="store_true",
                     help="continue exactly from <out_dir>/checkpoint/last.pth (same flags expected, changes are "
                          "logged as warnings; the seed comes from the checkpoint and --load is ignored); the number "
                          "of torchrun processes may change if processes x --batch_size stays the same")
    new.add_argument("--debug", action="store_true",
                     help="on an error, show the traceback instead of the one-line message (log.txt has it too)")
    new.add_argument("--sync_bn", action="store_true",
                     help="torchrun runs on GPUs: batch normalisation with the statistics of all processes' batches "
                          "(torch.nn.SyncBatchNorm); by default each process normalises with its own batch")


def patch_size(text: str) -> int:
    """argparse type of ``--patch_size``: a multiple of 16 of at least 32 (checked here, not at the first step)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value % PATCH_MULTIPLE or value < MIN_PATCH_SIZE:
        lower = value // PATCH_MULTIPLE * PATCH_MULTIPLE
        hint = f"{lower} or {lower + PATCH_MULTIPLE}" if lower >= MIN_PATCH_SIZE else str(MIN_PATCH_SIZE)
        raise argparse.ArgumentTypeError(
            f"{value} is not a multiple of {PATCH_MULTIPLE} of at least {MIN_PATCH_SIZE} (the Laplacian loss halves "
            f"crops four times); try {hint}"
        )
    return value


def check_training_arguments(options: TrainingOptions) -> None:
    """Refuse values the loop cannot run with, naming the flag."""
    for name in ("epochs", "batch_size", "patch_size", "samples_per_epoch", "max_steps"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be a positive number, got {value}")
    if options.num_workers < 0:
        raise ValueError(f"--num_workers must be 0 or more, got {options.num_workers}")
    if options.seed is not None and options.seed < 0:
        raise ValueError(f"--seed must be 0 or more, got {options.seed}")
    if parse_decay_type(options.decay_type)[0] == "plateau" and options.patience is None:
        raise ValueError("--decay_type plateau needs --patience N (epochs without improvement)")
    if options.pwc_weights is not None:
        try:
            PWCNet(options.pwc_weights)
        except (OSError, ValueError) as error:
            raise ValueError(f"--pwc_weights: {error}; give pytorch-pwc's network-default.pytorch") from error
    # A new run would overwrite the checkpoints of an earlier one in the same folder.
    earlier = sorted(checkpoint_dir(options.out_dir).glob("*.pth")) if not options.resume else []
    if earlier and last_checkpoint_path(options.out_dir).exists():
        raise ValueError(
            f"--out_dir {options.out_dir} already holds the checkpoints of a run ({earlier[-1].name}, ...): continue it "
            f"with --resume, or choose another --out_dir"
        )
    if earlier:
        raise ValueError(f"--out_dir {options.out_dir} holds {earlier[-1].name} but no last.pth: "
                         f"{without_last_checkpoint(options.out_dir)}")


def retry_hint(out_dir: PathType) -> str:
    """How to carry on after a full disk: with ``--resume`` once the run in ``out_dir`` has a ``last.pth``."""
    return "continue with --resume" if last_checkpoint_path(out_dir).exists() else "run again"


@contextlib.contextmanager
def start_run(options: TrainingOptions, flags: dict[str, Any], program: str) -> Iterator[Run]:
    """The common start of train.py and distill.py, used as ``with start_run(options, vars(args), program) as
    run:`` inside :func:`common.failures.run_script` (with :func:`retry_hint`); ``flags`` are every flag of the
    script by name. Checks the flags (a bad value is a ``ScriptError`` naming it), picks the device (under
    torchrun: joins the process group, left again when the block ends), logs to ``--out_dir`` (rank 0), reads
    ``last.pth`` for ``--resume`` and seeds every generator (with rank 0's seed on every process)."""
    try:
        refuse_aliased_paths(flags)
        check_output_location(options.out_dir, "--out_dir")
        check_training_arguments(options)
    except ValueError as error:
        raise ScriptError(str(error)) from error
    with distributed.process_group(options.device, options.gpu_id) as device:
        if distributed.is_main_process():
            setup_logging(options.out_dir)
        else:
            distributed.setup_secondary_logging()
        if options.sync_bn:
            distributed.check_sync_batchnorm(device)
        resume_state = load_last_checkpoint(options.out_dir) if options.resume else None
        if resume_state is not None:
            check_same_networks(resume_state, flags, program, last_checkpoint_path(options.out_dir))
        seed = resume_state["progress"]["seed"] if resume_state else resolve_seed(options.seed)
        seed = distributed.broadcast_int(seed, device)
        seed_everything(seed)
        if distributed.is_distributed():
            logger.info("Process group of %d processes (%s), %d items per step (--batch_size %d each)",
                        distributed.world_size(), torch.distributed.get_backend(), options.batch_size *
                        distributed.world_size(), options.batch_size)
        yield Run(options, dict(flags), device, seed, resume_state)


def resolve_seed(seed: Optional[int]) -> int:
    """``--seed``, or a fresh random one when none was given (the original was unseeded)."""
    return secrets.randbits(31) if seed is None else seed


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def write_config(out_dir: PathType, flags: dict[str, Any]) -> None:
    """Append the run's flags (values by name) to ``out_dir/config.txt`` in the original's format (time stamp, then
    one ``name: value`` line per argument); only rank 0 of a distributed run writes."""
    if not distributed.is_main_process():
        return
    now = datetime.datetime.now().strftime("%Y-%m-%d-%H:%M:%S")
    lines = [now, ""] + [f"{name}: {value}" for name, value in flags.items()] + [""]
    append_text_atomically(Path(out_dir) / "config.txt", "\n".join(lines) + "\n")
