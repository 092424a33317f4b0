"""The training loop shared by train.py (phase 1: OBProxSG compression, or plain training) and distill.py
(phase 2: distillation), with the flags both scripts share.

One epoch is one pass over the training set (Vimeo-90K septuplets and BVI-DVC quintuplets concatenated, as the
original's ``Sampler(iter=True)``), shuffled, in batches of ``--batch_size``; after every epoch the loop validates,
writes the reports and saves ``model_epochNNN.pth`` and ``last.pth`` (``pipeline/checkpoints.py``).

Reproducibility and exact resume: the order of every epoch and the random crop, flips and time reversal of every
item are drawn from generators seeded by (seed, epoch) and (seed, epoch, item), never from a generator shared with
the rest of the run. The data an optimizer step sees therefore does not depend on where a run was interrupted or
on ``--num_workers``, and a run stopped after any step (``--max_steps``) and continued with ``--resume`` takes the
same steps as one that never stopped (bit-exactly on the CPU).

Distributed runs (torchrun, ``pipeline/distributed.py``): each of the N processes takes every N-th item of the
epoch's seeded order (:class:`EpochSampler`), ``--batch_size`` at a time, so one step of the N processes covers
the same N x ``--batch_size`` items as one step of a single process with a batch N times larger. That is why the
sampler is not ``torch.utils.data.DistributedSampler``: the sharding is the same (order padded to a multiple of N
by repeating its start, then ``order[rank::N]``), but the order is the single-process one and an epoch can start
at any step, which keeps exact resume. Progress counts optimizer steps, and a step means the same items for any
N with the same N x ``--batch_size``; a run resumes with any number of processes as long as that product stays.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import math
import random
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data import Sampler as IndexSampler

from data import BVIDVC_quintuplet, Sampler, Vimeo90k_quintuplet
from metrics import calc_psnr
from pipeline import distributed
from pipeline.checkpoints import (
    changed_arguments,
    checkpoint_dir,
    last_checkpoint_path,
    load_last_checkpoint,
    restore_last_checkpoint,
    save_epoch_checkpoint,
    save_last_checkpoint,
)
from pipeline.sparsity import plot_curves, sparsity_report, width_suggestion_lines, write_report
from pipeline.validation import ValidationScores, build_validation_loader, validate_model
from utility import PathType, add_model_arguments, load_checkpoint, setup_logging

logger = logging.getLogger(__name__)

TRAINING_SETS = ("vimeo", "bvidvc")
# Independent random streams derived from --seed.
_ORDER_STREAM, _ITEM_STREAM = 0, 1

# Flags that may change between a run and its --resume without changing what the resumed steps compute.
RESUME_FREE_FLAGS = ("resume", "max_steps", "num_workers", "device", "gpu_id", "load", "seed")

# (frame1, frame3, frame4, frame5, frame7) on the device -> (loss, predicted frame4).
StepFunction = Callable[[Sequence[Tensor]], tuple[Tensor, Tensor]]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stops before the bad step changes any weight."""


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
    parser.add_argument("--gpu_id", type=int, default=0,
                        help="CUDA device index used when the device is a GPU (under torchrun every process takes "
                             "the GPU numbered by its LOCAL_RANK instead)")

    directories = parser.add_argument_group("directories")
    directories.add_argument("--data_dir", type=str, required=True,
                             help="folder holding vimeo_septuplet/ and bvidvc/ (the original defaulted to a "
                                  "Windows path, D:/stmfnet_data)")
    directories.add_argument("--out_dir", type=str, default=out_dir,
                             help="log.txt, config.txt, reports and checkpoint/ are written here")
    directories.add_argument("--load", type=str, default=None, help=load_help)

    learning = parser.add_argument_group("learning options")
    learning.add_argument("--epochs", type=int, default=70, help="total number of epochs of the run")
    learning.add_argument("--batch_size", type=int, default=2,
                          help="batch size of each process (training and validation): a torchrun run of N processes "
                               "takes N x this many items per step")
    learning.add_argument("--patch_size", type=int, default=256,
                          help="side of the random square crops (training) and fixed crops (validation)")

    optimization = parser.add_argument_group("optimization")
    optimization.add_argument("--lr", type=float, default=0.001, help="learning rate")
    optimization.add_argument("--lr_decay", type=int, default=20, help="step decay: multiply the rate by --gamma "
                              "every N epochs")
    optimization.add_argument("--decay_type", type=str, default="step",
                              help="step, step_A_B_... (decay at epochs A, B, ...; like the original, any "
                                   "name containing 'step', e.g. multistep_5_10) or plateau (on validation PSNR)")
    optimization.add_argument("--gamma", type=float, default=0.5, help="learning rate decay factor")
    optimization.add_argument("--patience", type=int, default=None,
                              help="plateau: epochs without PSNR improvement before the rate is reduced")
    optimization.add_argument("--optimizer", default="ADAMax", choices=tuple(optimizers),
                              help=f"optimizer ({' | '.join(optimizers)})")
    optimization.add_argument("--weight_decay", type=float, default=0, help="weight decay (ignored by OBProxSG)")

    add_model_arguments(parser, finetune_pwc=True,
                        finetune_pwc_help="train the teacher's PWC-Net; as in the original this store_true flag "
                                          "defaults to True, so it is always on")

    new = parser.add_argument_group("options added by this reimplementation")
    new.add_argument("--pwc_weights", type=str, default=None,
                     help="pytorch-pwc '.pytorch' file to start the teacher's PWC-Net from (the original downloaded "
                          "it; default: random initialisation, replaced anyway by --load or --teacher_dir)")
    new.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                     help="auto takes the GPU --gpu_id when there is one, else the CPU")
    new.add_argument("--seed", type=int, default=None,
                     help="seed of weights initialisation, data order and augmentation (default: a random seed, "
                          "logged and saved so the run can be resumed or repeated)")
    new.add_argument("--num_workers", type=int, default=0, help="DataLoader worker processes (the original used 0)")
    new.add_argument("--train_sets", nargs="+", choices=TRAINING_SETS, default=list(train_sets),
                     help="training sets under --data_dir, concatenated in this order (the original needed both "
                          f"and used {' '.join(train_sets)}); a missing set is an error unless left out here")
    new.add_argument("--samples_per_epoch", type=int, default=None,
                     help="draw this many random items per epoch (a set chosen in proportion to its size, then an "
                          "item) instead of one pass over all items (the original's behaviour, the default)")
    new.add_argument("--max_steps", type=int, default=None,
                     help="stop after this many optimizer steps in total, counting steps done before a --resume; "
                          "the run ends with validation and checkpoints as at an epoch end")
    new.add_argument("--resume", action="store_true",
                     help="continue exactly from <out_dir>/checkpoint/last.pth (same flags expected, changes are "
                          "logged as warnings; the seed comes from the checkpoint and --load is ignored); the number "
                          "of torchrun processes may change if processes x --batch_size stays the same")
    new.add_argument("--sync_bn", action="store_true",
                     help="torchrun runs on GPUs: batch normalisation with the statistics of all processes' batches "
                          "(torch.nn.SyncBatchNorm); by default each process normalises with its own batch")


def check_training_arguments(args: argparse.Namespace) -> None:
    """Refuse values the loop cannot run with, naming the flag."""
    for name in ("epochs", "batch_size", "patch_size", "samples_per_epoch", "max_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be a positive number, got {value}")
    if args.num_workers < 0:
        raise ValueError(f"--num_workers must be 0 or more, got {args.num_workers}")
    if args.seed is not None and args.seed < 0:
        raise ValueError(f"--seed must be 0 or more, got {args.seed}")
    # A new run would overwrite the checkpoints of an earlier one in the same folder.
    earlier = sorted(checkpoint_dir(args.out_dir).glob("*.pth")) if not args.resume else []
    if earlier:
        raise ValueError(
            f"--out_dir {args.out_dir} already holds the checkpoints of a run ({earlier[-1].name}, ...): continue it "
            f"with --resume, or choose another --out_dir"
        )


@contextlib.contextmanager
def start_run(
    parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]
) -> Iterator[tuple[argparse.Namespace, logging.Logger, torch.device, Optional[dict[str, Any]], int]]:
    """The common start of train.py and distill.py, used as ``with start_run(parser, argv) as (...):``: parse and
    check the flags (a bad value exits with the usage message), pick the device (under torchrun: join the process
    group, left again when the block ends), log to ``--out_dir`` (rank 0), read ``last.pth`` for ``--resume`` and
    seed every generator (with rank 0's seed on every process).

    Yields the arguments, the logger, the device, the resumed checkpoint (None for a new run) and the seed.
    """
    args = parser.parse_args(argv)
    try:
        check_training_arguments(args)
    except ValueError as error:
        parser.error(str(error))
    with distributed.process_group(args.device, args.gpu_id) as device:
        logger = setup_logging(args.out_dir) if distributed.is_main_process() else distributed.setup_secondary_logging()
        if args.sync_bn:
            distributed.check_sync_batchnorm(device)
        resume_state = load_last_checkpoint(args.out_dir) if args.resume else None
        seed = resume_state["progress"]["seed"] if resume_state else resolve_seed(args.seed)
        seed = distributed.broadcast_int(seed, device)
        seed_everything(seed)
        if distributed.is_distributed():
            logger.info("Process group of %d processes (%s), %d items per step (--batch_size %d each)",
                        distributed.world_size(), torch.distributed.get_backend(), args.batch_size *
                        distributed.world_size(), args.batch_size)
        yield args, logger, device, resume_state, seed


@dataclass
class TrainingData:
    """The training set (concatenated or sampled), its seeded loader and sampler, and the validation loader."""

    train_set: Dataset
    train_loader: DataLoader
    sampler: EpochSampler
    valid_loader: DataLoader

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)


def build_training_data(args: argparse.Namespace, seed: int) -> TrainingData:
    """The training sets named by ``--train_sets`` and the Vimeo-90K test list for validation; in a distributed
    run, this process's share of both."""
    num_replicas, rank = distributed.world_size(), distributed.rank()
    train_set = build_training_set(args.data_dir, args.patch_size, args.train_sets, args.samples_per_epoch)
    train_loader, sampler = build_training_loader(
        train_set, args.batch_size, seed, args.num_workers, num_replicas=num_replicas, rank=rank
    )
    valid_loader = build_validation_loader(
        args.data_dir, args.patch_size, args.batch_size, args.num_workers, num_replicas=num_replicas, rank=rank
    )
    logger.info("%d training items (%d steps per epoch), %d validation items",
                len(train_set), len(train_loader), len(valid_loader.dataset))
    return TrainingData(train_set, train_loader, sampler, valid_loader)


def load_starting_weights(model: nn.Module, args: argparse.Namespace, resumed: bool) -> None:
    """``--load``: start from a checkpoint's weights (ignored when ``--resume`` brings its own)."""
    if args.load is None:
        return
    if resumed:
        logger.info("--load %s ignored: the weights come from the resumed checkpoint", args.load)
        return
    checkpoint = load_checkpoint(model, args.load)
    logger.info("Loaded %s (saved at epoch %s)", args.load, checkpoint.get("epoch", "?"))


def write_config(out_dir: PathType, args: argparse.Namespace) -> None:
    """Append the run's arguments to ``out_dir/config.txt`` in the original's format (time stamp, then one
    ``name: value`` line per argument); only rank 0 of a distributed run writes."""
    if not distributed.is_main_process():
        return
    now = datetime.datetime.now().strftime("%Y-%m-%d-%H:%M:%S")
    lines = [now, ""] + [f"{name}: {value}" for name, value in vars(args).items()] + [""]
    with open(Path(out_dir) / "config.txt", "a") as file:
        file.write("\n".join(lines) + "\n")


def resolve_seed(seed: Optional[int]) -> int:
    """``--seed``, or a fresh random one when none was given (the original was unseeded)."""
    return secrets.randbits(31) if seed is None else seed


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _mixed_seed(*numbers: int) -> int:
    return int(np.random.SeedSequence(list(numbers)).generate_state(1, dtype=np.uint64)[0])


class EpochSampler(IndexSampler):
    """Yields ``(epoch, index)`` keys: a fresh permutation of ``range(length)`` per epoch, from (seed, epoch).

    With ``num_replicas`` N > 1 it yields the share of process ``rank``, as ``DistributedSampler`` does: the order
    padded to a multiple of N by repeating its start, then every N-th position from ``rank``. Every process gets
    ``ceil(length / N)`` keys, and positions ``k*b*N ... (k+1)*b*N - 1`` of the order form step k of the N
    processes at batch size b.

    ``set_epoch(epoch, start)`` selects the epoch and skips the first ``start`` keys of this process's share (a
    resumed epoch).
    """

    def __init__(self, length: int, seed: int, shuffle: bool = True, num_replicas: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not one of {num_replicas} replicas")
        self.length = length
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.share_length = math.ceil(length / num_replicas)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        if not 0 <= start <= self.share_length:
            raise ValueError(f"cannot start epoch {epoch} at position {start} of {self.share_length}")
        self.epoch, self.start = epoch, start

    def order(self, epoch: int) -> list[int]:
        """The epoch's order of all items (every process computes the same)."""
        if not self.shuffle:
            return list(range(self.length))
        generator = torch.Generator().manual_seed(_mixed_seed(self.seed, _ORDER_STREAM, epoch))
        return torch.randperm(self.length, generator=generator).tolist()

    def share(self, epoch: int) -> list[int]:
        """This process's items of the epoch, in order."""
        order = self.order(epoch)
        if self.num_replicas == 1:
            return order
        padded_length = self.share_length * self.num_replicas
        padded = (order * math.ceil(padded_length / self.length))[:padded_length]
        return padded[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return iter([(epoch, index) for index in self.share(epoch)[self.start:]])

    def __len__(self) -> int:
        return self.share_length - self.start


class SeededItems(Dataset):
    """Wraps a dataset that draws its augmentation from torch's global generator: item ``(epoch, index)`` is made
    with that generator seeded by (seed, epoch, index), and the generator's state is restored afterwards."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(_mixed_seed(self.seed, _ITEM_STREAM, epoch, index))
            return self.dataset[index]


def build_training_set(
    data_dir: PathType, patch_size: int, train_sets: Sequence[str], samples_per_epoch: Optional[int] = None
) -> Sampler:
    """The training sets under ``data_dir`` in the given order, concatenated (or drawn at random when
    ``samples_per_epoch`` is given), with random crops of ``patch_size``, flips and time reversal."""
    if not train_sets:
        raise ValueError(f"no training set chosen; valid: {', '.join(TRAINING_SETS)}")
    crop = (patch_size, patch_size)
    builders = {
        "vimeo": lambda: Vimeo90k_quintuplet(Path(data_dir) / "vimeo_septuplet", train=True, crop_sz=crop),
        "bvidvc": lambda: BVIDVC_quintuplet(Path(data_dir) / "bvidvc", crop_sz=crop),
    }
    datasets = []
    for name in dict.fromkeys(train_sets):
        try:
            datasets.append(builders[name]())
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error}. Train without it by leaving it out of --train_sets.") from error
    if samples_per_epoch is None:
        return Sampler(datasets, iter=True)
    return Sampler(datasets, iter=False, samples_per_epoch=samples_per_epoch)


def build_training_loader(
    dataset: Dataset, batch_size: int, seed: int, num_workers: int = 0, num_replicas: int = 1, rank: int = 0
) -> tuple[DataLoader, EpochSampler]:
    """A loader over ``dataset`` (or process ``rank``'s share of it) in seeded order with seeded items; step its
    sampler's ``set_epoch`` every epoch."""
    if len(dataset) == 0:
        raise ValueError("the training set is empty")
    sampler = EpochSampler(len(dataset), seed, num_replicas=num_replicas, rank=rank)
    # The loader's own generator keeps iterator creation from drawing on torch's global generator.
    loader = DataLoader(
        SeededItems(dataset, seed), batch_size=batch_size, sampler=sampler, num_workers=num_workers,
        generator=torch.Generator(),
    )
    return loader, sampler


@dataclass
class Progress:
    """Where a run stands; saved in ``last.pth``.

    ``epoch`` counts finished epochs, ``step`` optimizer steps of the whole run, ``epoch_step`` the steps done in
    the unfinished epoch; the sums give the epoch's mean training loss and PSNR (over all processes of a
    distributed run). ``history`` has one record per validation (train loss, PSNR, validation PSNR/SSIM, density)
    for the curves. ``world_size`` is the number of processes of the run that saved it.
    """

    seed: int
    steps_per_epoch: int
    world_size: int = 1
    epoch: int = 0
    step: int = 0
    epoch_step: int = 0
    loss_sum: float = 0.0
    psnr_sum: float = 0.0
    psnr_count: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def epochs_done(self) -> float:
        return self.epoch + self.epoch_step / self.steps_per_epoch

    def start_epoch(self) -> None:
        self.epoch_step, self.loss_sum, self.psnr_sum, self.psnr_count = 0, 0.0, 0.0, 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Progress:
        return cls(**values)


def _start_progress(args: argparse.Namespace, seed: int, steps_per_epoch: int,
                    resume_state: Optional[dict[str, Any]], states: dict[str, Any]) -> Progress:
    """A new run's progress, or, with the ``last.pth`` contents of ``--resume``, the saved one after restoring every
    state into the freshly built objects ``states`` (``restore_last_checkpoint``'s keywords), warning about flags
    that changed since.

    A run may resume with another number of processes when the items per step (processes x ``--batch_size``) stay
    the same: its steps then take the same items, and ``epoch_step`` locates the resumed step for any split.
    """
    world_size = distributed.world_size()
    if resume_state is None:
        return Progress(seed=seed, steps_per_epoch=steps_per_epoch, world_size=world_size)
    _check_items_per_step(resume_state, args.batch_size, world_size)
    ignored = (*RESUME_FREE_FLAGS, "batch_size")  # checked above, with the number of processes
    for name, (before, now) in changed_arguments(resume_state["args"], args, ignored).items():
        logger.warning("--%s is %s in the resumed run, %s before", name, now, before)
    progress = Progress.from_dict(
        restore_last_checkpoint(resume_state, **states)
    )
    if progress.steps_per_epoch != steps_per_epoch:
        raise ValueError(
            f"--resume: the run had {progress.steps_per_epoch} steps per epoch, now {steps_per_epoch}; keep "
            "--data_dir, --train_sets, --samples_per_epoch and the items per step (processes x --batch_size)"
        )
    progress.world_size = world_size
    return progress


def prepare_run(
    args: argparse.Namespace,
    seed: int,
    steps_per_epoch: int,
    resume_state: Optional[dict[str, Any]],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loss: nn.Module,
    device: torch.device,
) -> tuple[Progress, nn.Module]:
    """Everything between building a run's objects and its loop: the progress (``_start_progress``), the run's
    config.json, and under torchrun DDP around ``model`` with the loss's discriminators and batch sums made ready
    (no-ops in one process). Returns the progress and the model to train with (``model`` or its DDP wrapper)."""
    progress = _start_progress(args, seed, steps_per_epoch, resume_state,
                               dict(model=model, optimizer=optimizer, scheduler=scheduler, loss=loss))
    write_config(args.out_dir, args)
    trained_model = distributed.wrap_model(model, device)
    distributed.replicate_loss(loss)
    return progress, trained_model


def _check_items_per_step(resume_state: dict[str, Any], batch_size: int, world_size: int) -> None:
    saved_world_size = resume_state["progress"].get("world_size", 1)
    saved_batch_size = resume_state["args"]["batch_size"]
    saved_items, items = saved_world_size * saved_batch_size, world_size * batch_size
    if saved_items != items:
        raise ValueError(
            f"--resume: the run took {saved_items} items per step ({saved_world_size} process(es) x --batch_size "
            f"{saved_batch_size}), this one would take {items} ({world_size} x {batch_size}); choose --batch_size "
            f"and the number of processes so that their product is {saved_items}"
        )
    if saved_world_size != world_size:
        logger.info("Resuming a run of %d process(es) x --batch_size %d with %d x %d (%d items per step either way)",
                    saved_world_size, saved_batch_size, world_size, batch_size, items)


@dataclass
class TrainingLoop:
    """Epochs of ``step_function`` steps on ``model``, each followed by validation, reports and checkpoints.

    ``model`` is the network itself, validated and saved; in a distributed run ``step_function`` trains it through
    its DDP wrapper, every process validates its share of the validation set, and only rank 0 writes files.
    ``loss`` is the loss module, saved for its discriminators' state. ``log_points`` is how many loss lines an
    epoch logs (the original: 20 in train.py, 10 in distill.py). ``report_sparsity`` adds the compression report
    (phase 1).
    """

    model: nn.Module
    step_function: StepFunction
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_loader: DataLoader
    sampler: EpochSampler
    valid_loader: DataLoader
    device: torch.device
    args: argparse.Namespace
    progress: Progress
    log_points: int = 20
    report_sparsity: bool = False

    def __post_init__(self) -> None:
        self.out_dir = Path(self.args.out_dir)
        self.step_kind: Optional[str] = getattr(self.optimizer, "last_step_kind", None)

    def finished(self) -> bool:
        return self.progress.epoch >= self.args.epochs or self._max_steps_reached()

    def _max_steps_reached(self) -> bool:
        return self.args.max_steps is not None and self.progress.step >= self.args.max_steps

    def run_to_exit_status(self) -> int:
        """:meth:`run` for a script's ``main``: 0 when done, 1 after logging why a non-finite loss stopped it."""
        try:
            self.run()
        except NonFiniteLossError as error:
            logger.error("Stopped: %s", error)
            return 1
        return 0

    def run(self) -> None:
        """Train until ``--epochs`` epochs or ``--max_steps`` steps are done; raises NonFiniteLossError."""
        progress = self.progress
        logger.info("********STARTING FROM EPOCH %d (step %d)********", progress.epoch, progress.step)
        if self.finished():
            logger.info("Nothing to do: %d of %d epochs and %d steps (--max_steps %s) already done",
                        progress.epoch, self.args.epochs, progress.step, self.args.max_steps)
        while not self.finished():
            epoch_complete = self.train_epoch()
            self.end_epoch(epoch_complete)
        if self.report_sparsity and progress.history:
            self._log_width_suggestions()

    def train_epoch(self) -> bool:
        """Steps until the epoch ends (True) or ``--max_steps`` is reached (False)."""
        progress = self.progress
        self.model.train()
        self.loss.train()
        self.sampler.set_epoch(progress.epoch, start=progress.epoch_step * self.train_loader.batch_size)
        log_every = max(progress.steps_per_epoch // self.log_points, 1)
        for frames in self.train_loader:
            frames = [frame.to(self.device) for frame in frames]
            self.optimizer.zero_grad()
            loss, prediction = self.step_function(frames)
            # Over all processes, before any of them steps: they all see the same loss and stop together.
            loss_sum, psnr_sum, psnr_count = distributed.all_reduce_sum(
                [loss.item(), calc_psnr(frames[2], prediction.detach()).sum(), prediction.shape[0]], self.device
            )
            loss_value = loss_sum / distributed.world_size()
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(self._non_finite_message(loss_value))
            loss.backward()
            self.optimizer.step()
            self._log_step_kind()

            progress.step += 1
            progress.epoch_step += 1
            progress.loss_sum += loss_value
            progress.psnr_sum += psnr_sum
            progress.psnr_count += round(psnr_count)
            if progress.epoch_step % log_every == 0:
                logger.info("{:<13s}{:<14s}{:<6s}{:<16s}{:<12s}{:<20.16f}".format(
                    "Train Epoch: ", f"[{progress.epoch + 1}/{self.args.epochs}]", "Step: ",
                    f"[{progress.epoch_step}/{progress.steps_per_epoch}]", "train loss: ", loss_value))
            if self._max_steps_reached():
                break
        return progress.epoch_step >= progress.steps_per_epoch

    def end_epoch(self, epoch_complete: bool) -> None:
        """Validate, report and save; a run stopped mid-epoch does the same but keeps the epoch open."""
        progress = self.progress
        epoch_number = progress.epoch + 1  # the epoch these weights come from, counted from 1
        record: dict[str, Any] = {
            "epoch_number": epoch_number,
            "partial": not epoch_complete,
            "step": progress.step,
            "train_loss": progress.loss_sum / max(progress.epoch_step, 1),
            "train_psnr": progress.psnr_sum / max(progress.psnr_count, 1),
        }
        if epoch_complete:
            progress.epoch += 1
            progress.start_epoch()
            if self.args.decay_type != "plateau":
                self.scheduler.step()
        distributed.broadcast_buffers(self.model)  # every process scores the model rank 0 saves
        scores = validate_model(self.model, self.valid_loader, self.device)
        if epoch_complete and self.args.decay_type == "plateau":
            self.scheduler.step(scores.psnr)
        record.update(epoch=progress.epochs_done(), valid_psnr=scores.psnr, valid_ssim=scores.ssim)
        if self.report_sparsity:
            record["density"] = self._report_sparsity(record, scores)
        self._add_to_history(record)
        self._log_validation(epoch_number, record, epoch_complete)
        if distributed.is_main_process():
            self._save(epoch_number)

    def _save(self, epoch_number: int) -> None:
        """The curves and both checkpoints (rank 0 of a distributed run only)."""
        progress = self.progress
        plot_curves(progress.history, self.out_dir / "curves.png")
        model_path = save_epoch_checkpoint(self.model, self.out_dir, epoch_number)
        save_last_checkpoint(
            self.out_dir, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, loss=self.loss,
            progress=progress.to_dict(), args=self.args,
        )
        logger.info("Saved %s and %s", model_path, last_checkpoint_path(self.out_dir))

    def _add_to_history(self, record: dict[str, Any]) -> None:
        # The record of a run stopped mid-epoch is replaced by the next record of that epoch (after a resume).
        history = self.progress.history
        if history and history[-1]["partial"] and history[-1]["epoch_number"] == record["epoch_number"]:
            history.pop()
        history.append(record)

    def _report_sparsity(self, record: dict[str, Any], scores: ValidationScores) -> float:
        report = sparsity_report(self.model, epoch=record["epoch"], step=record["step"])
        if distributed.is_main_process():
            write_report(report, self.out_dir)
            # The original's density file: "density,psnr," per validation.
            with open(self.out_dir / "density results.txt", "a") as file:
                file.write(f"{report['density']},{scores.psnr},\n")
        return report["density"]

    def _log_validation(self, epoch_number: int, record: dict[str, Any], epoch_complete: bool) -> None:
        stopped = "" if epoch_complete else f" (stopped by --max_steps at step {record['step']})"
        message = (f"Train Epoch: [{epoch_number}/{self.args.epochs}]  Train PSNR: {record['train_psnr']:<3.2f}  "
                   f"Valid PSNR: {record['valid_psnr']:<3.2f}  Valid SSIM: {record['valid_ssim']:<3.2f}")
        if "density" in record:
            message += f"  Density: {record['density']:<3.2f}"
        logger.info(message + stopped)

    def _log_step_kind(self) -> None:
        kind = getattr(self.optimizer, "last_step_kind", None)
        if kind != self.step_kind:
            logger.info("OBProxSG: %s steps from step %d (epoch %d)", kind, self.progress.step + 1,
                        self.progress.epoch + 1)
            self.step_kind = kind

    def _log_width_suggestions(self) -> None:
        report = sparsity_report(self.model, epoch=self.progress.epochs_done(), step=self.progress.step)
        logger.info("Suggested channel widths (output channels with any non-zero weight), per block:")
        for line in width_suggestion_lines(report):
            logger.info("  %s", line)

    def _non_finite_message(self, loss: float) -> str:
        progress = self.progress
        kept = last_checkpoint_path(self.out_dir)
        kept_text = f"the last good checkpoint is {kept}" if kept.exists() else "no checkpoint was saved yet"
        return (f"training loss is {loss} at step {progress.step + 1} (epoch {progress.epoch + 1}, step "
                f"{progress.epoch_step + 1} of {progress.steps_per_epoch}); stopping before this step changes the "
                f"weights; {kept_text}. Try a lower --lr.")
