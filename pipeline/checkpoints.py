"""Checkpoints of train.py and distill.py: the original per-epoch files, and a ``last.pth`` with the run's
:class:`Progress` for exact resume.

``out_dir/checkpoint/model_epochNNN.pth`` keeps the original format ``{"epoch", "state_dict"}`` so that
evaluate.py, ``models.checkpoint.load_checkpoint`` and the original tools load it. ``out_dir/checkpoint/last.pth`` holds
everything a run needs to continue as if it had never stopped: model, optimizer (OBProxSG's phase counters
included), scheduler, the loss's discriminators and their optimizers, the loop's progress, and the torch, CUDA,
numpy and Python random generator states. Every file is written atomically (temporary file + rename), so a crash
mid-save leaves the previous file intact.

In a distributed run rank 0 saves, and the model is saved without its DistributedDataParallel wrapper: no key has
the ``module.`` prefix, so the checkpoints of a distributed run and of a single process are interchangeable
(resuming with another number of processes: ``data/sampling.py``). The random generator states saved are rank
0's, and a resumed run restores them on every process (which all started from the same seed).
"""
from __future__ import annotations

import logging
import random
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import torch
from torch import nn
from torch.optim import lr_scheduler

from common.failures import ScriptError
from common.files import PathType
from common.safe_write import atomic_save, remove_stale_partials
from models.checkpoint import read_torch_file
from pipeline.distributed import unwrap_model

logger = logging.getLogger(__name__)

CHECKPOINT_FOLDER = "checkpoint"
# What every last.pth holds (see save_last_checkpoint), and the flags naming the networks it trained.
RESUME_KEYS = {"model", "optimizer", "scheduler", "loss", "progress", "rng", "args"}
NETWORK_FLAGS = ("net", "student", "teacher")
LAST_CHECKPOINT = "last.pth"
# Flags that may change between a run and its --resume without changing what the resumed steps compute.
RESUME_FREE_FLAGS = ("resume", "max_steps", "num_workers", "device", "gpu_id", "load", "seed", "debug")
# Flags of the learning-rate schedule: a run resumed with other values continues on the schedule they describe.
SCHEDULE_FLAGS = ("lr", "lr_decay", "decay_type", "gamma", "patience")


def checkpoint_dir(out_dir: PathType) -> Path:
    return Path(out_dir) / CHECKPOINT_FOLDER


def epoch_checkpoint_path(out_dir: PathType, epoch: int) -> Path:
    """``out_dir/checkpoint/model_epochNNN.pth``, the original's name (epoch numbers start at 1)."""
    return checkpoint_dir(out_dir) / f"model_epoch{epoch:03d}.pth"


def last_checkpoint_path(out_dir: PathType) -> Path:
    return checkpoint_dir(out_dir) / LAST_CHECKPOINT


def save_epoch_checkpoint(model: nn.Module, out_dir: PathType, epoch: int) -> Path:
    """Write the model in the original format and return the path."""
    path = epoch_checkpoint_path(out_dir, epoch)
    atomic_save({"epoch": epoch, "state_dict": unwrap_model(model).state_dict()}, path)
    return path


def rng_states() -> dict[str, Any]:
    """The states of every random generator a run may draw from (all as tensors or plain Python values)."""
    numpy_state = np.random.get_state(legacy=False)
    python_version, python_internal, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python": {"version": python_version, "internal": list(python_internal), "gauss": python_gauss},
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    """Undo :func:`rng_states`; CUDA states are restored only when the same number of GPUs is visible."""
    torch.set_rng_state(states["torch"])
    cuda_states = states["cuda"]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    numpy_state = states["numpy"]
    np.random.set_state({
        "bit_generator": numpy_state["bit_generator"],
        "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
        "has_gauss": numpy_state["has_gauss"],
        "gauss": numpy_state["gauss"],
    })
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"]), python_state["gauss"]))


def save_last_checkpoint(
    out_dir: PathType,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loss: nn.Module,
    progress: dict[str, Any],
    flags: Mapping[str, Any],
) -> Path:
    """Write ``last.pth``: every state needed to resume, plus the run's flags (values by name) for reference."""
    path = last_checkpoint_path(out_dir)
    atomic_save(
        {
            "model": unwrap_model(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "loss": loss.state_dict(),
            "progress": progress,
            "rng": rng_states(),
            "args": dict(flags),
        },
        path,
    )
    return path


def load_last_checkpoint(out_dir: PathType) -> dict[str, Any]:
    """Read ``last.pth`` of a run (on the CPU); a clear error when the run has none. The temporaries of a save that
    was killed half-way are removed first."""
    for temporary in remove_stale_partials(checkpoint_dir(out_dir)):
        logger.info("Removed %s, left by a checkpoint write that was interrupted", temporary)
    path = last_checkpoint_path(out_dir)
    if not path.exists():
        raise ScriptError(f"--resume: {path} not found; {without_last_checkpoint(out_dir)}")
    try:
        state = read_torch_file(path)
    except ValueError as error:
        raise ScriptError(
            f"--resume: {error}; resume from a copy, or start a new run in another --out_dir"
        ) from error
    missing = sorted(RESUME_KEYS - set(state)) if isinstance(state, dict) else sorted(RESUME_KEYS)
    if missing:
        raise ScriptError(f"--resume: {path} is not the last.pth of a train.py or distill.py run (it lacks "
                          f"{', '.join(missing)}); choose another --out_dir for a new run")
    return state


def without_last_checkpoint(out_dir: PathType) -> str:
    """What to do with an ``out_dir`` that has no ``last.pth``: a run stopped before saving one, or killed while
    saving its first epoch (the epoch file is written second, so it then has one)."""
    epochs = sorted(checkpoint_dir(out_dir).glob("model_epoch*.pth"))
    if not epochs:
        return "resume needs the --out_dir of a run that saved at least one checkpoint"
    return (f"the run was stopped while saving, after {epochs[-1].name}: start a new run with another --out_dir and "
            f"--load {epochs[-1]} (its weights; the optimizer state is not in it), or delete {out_dir} to start over")


def restore_epoch_checkpoint(out_dir: PathType, model: nn.Module, progress: Progress) -> None:
    """Write the file of the last finished epoch from the restored model if a run was killed before writing it."""
    if progress.epoch > 0 and progress.epoch_step == 0 and not epoch_checkpoint_path(out_dir, progress.epoch).exists():
        path = save_epoch_checkpoint(model, out_dir, progress.epoch)
        logger.info("Wrote %s from last.pth (the run had been stopped before writing it)", path)


def check_same_networks(state: dict[str, Any], flags: dict[str, Any], program: str, path: PathType) -> None:
    """Refuse to resume a run of other networks (``--net``, or ``--student`` / ``--teacher``) or of another script;
    ``flags`` are this run's flag values by name."""
    saved = state["args"]
    for flag in NETWORK_FLAGS:
        if flag not in flags:
            continue
        if flag not in saved:
            raise ScriptError(f"--resume: {path} was not written by {program} (it has no --{flag}); resume it with "
                              f"the script that wrote it, or choose another --out_dir")
        if saved[flag] != flags[flag]:
            raise ScriptError(f"--resume: {path} is a run of --{flag} {saved[flag]}, not {flags[flag]}; "
                              f"pass --{flag} {saved[flag]}, or choose another --out_dir for a new run")


def restore_last_checkpoint(
    state: dict[str, Any],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loss: nn.Module,
) -> dict[str, Any]:
    """Load the states of :func:`save_last_checkpoint` into freshly built objects (already on their device),
    restore the random generators, and return the saved progress."""
    unwrap_model(model).load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    loss.load_state_dict(state["loss"], strict=True)
    restore_rng_states(state["rng"])
    return state["progress"]


def changed_arguments(saved: Mapping[str, Any], current: Mapping[str, Any], ignore: tuple[str, ...]
                      ) -> dict[str, tuple]:
    """Flags whose value differs from the resumed run's: {name: (saved, current)}."""
    changes = {}
    for name, value in current.items():
        if name in ignore:
            continue
        previous: Optional[Any] = saved.get(name)
        if previous != value:
            changes[name] = (previous, value)
    return changes


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


def start_progress(
    flags: Mapping[str, Any],
    seed: int,
    steps_per_epoch: int,
    world_size: int,
    resume_state: Optional[dict[str, Any]],
    **states: Any,
) -> Progress:
    """A new run's progress, or, with the ``last.pth`` contents of ``--resume``, the saved one after restoring every
    state into the freshly built objects ``states`` (:func:`restore_last_checkpoint`'s keywords), warning about
    ``flags`` (this run's values by name) that changed since.

    A run may resume with another number of processes when the items per step (processes x ``--batch_size``) stay
    the same: its steps then take the same items, and ``epoch_step`` locates the resumed step for any split.
    """
    if resume_state is None:
        return Progress(seed=seed, steps_per_epoch=steps_per_epoch, world_size=world_size)
    _check_items_per_step(resume_state, flags["batch_size"], world_size)
    ignored = (*RESUME_FREE_FLAGS, "batch_size")  # checked above, with the number of processes
    changes = changed_arguments(resume_state["args"], flags, ignored)
    for name, (before, now) in changes.items():
        logger.warning("--%s is %s in the resumed run, %s before", name, now, before)
    new_schedule = states["scheduler"].state_dict()
    progress = Progress.from_dict(restore_last_checkpoint(resume_state, **states))
    if set(changes) & set(SCHEDULE_FLAGS):
        continue_on_new_schedule(states["scheduler"], new_schedule, flags["lr"], "lr" in changes)
    if progress.steps_per_epoch != steps_per_epoch:
        raise ScriptError(
            f"--resume: the run had {progress.steps_per_epoch} steps per epoch, now {steps_per_epoch}; keep "
            "--data_dir, --train_sets, --samples_per_epoch and the items per step (processes x --batch_size)"
        )
    progress.world_size = world_size
    return progress


def continue_on_new_schedule(scheduler: Any, new_schedule: dict[str, Any], lr: float, lr_changed: bool) -> None:
    """Put a restored ``scheduler`` on the schedule of the current flags (``new_schedule``: the state of a
    scheduler built from them) at the restored epoch, and set the optimizer's rate accordingly.

    A restored scheduler state alone would bring back the old step size, milestones, factor and base rate, and the
    changed flags would have no effect. The plateau schedule keeps its record of the best score.
    """
    restored = scheduler.state_dict()
    groups = scheduler.optimizer.param_groups
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        kept = restored if "best" in restored else new_schedule
        state = {**kept, "patience": new_schedule["patience"], "factor": new_schedule["factor"]}
        rates = [lr if lr_changed else group["lr"] for group in groups]
    else:
        epoch = restored["last_epoch"]
        state = {**new_schedule, "last_epoch": epoch, "_step_count": restored.get("_step_count", epoch + 1)}
        rates = [base * state["gamma"] ** _decays_done(state) for base in state["base_lrs"]]
    scheduler.load_state_dict({**state, "_last_lr": rates})
    for group, rate in zip(groups, rates):
        group["lr"] = rate
    logger.warning("The learning rate continues on the new schedule at epoch %d: %s", state["last_epoch"],
                   ", ".join(f"{rate:g}" for rate in rates))


def _decays_done(schedule: dict[str, Any]) -> int:
    """How many times a step or multistep schedule (as its state) has decayed by its ``last_epoch``."""
    if "milestones" in schedule:
        return bisect_right(sorted(schedule["milestones"].elements()), schedule["last_epoch"])
    return schedule["last_epoch"] // schedule["step_size"]


def _check_items_per_step(resume_state: dict[str, Any], batch_size: int, world_size: int) -> None:
    saved_world_size = resume_state["progress"].get("world_size", 1)
    saved_batch_size = resume_state["args"]["batch_size"]
    saved_items, items = saved_world_size * saved_batch_size, world_size * batch_size
    if saved_items != items:
        raise ScriptError(
            f"--resume: the run took {saved_items} items per step ({saved_world_size} process(es) x --batch_size "
            f"{saved_batch_size}), this one would take {items} ({world_size} x {batch_size}); choose --batch_size "
            f"and the number of processes so that their product is {saved_items}"
        )
    if saved_world_size != world_size:
        logger.info("Resuming a run of %d process(es) x --batch_size %d with %d x %d (%d items per step either way)",
                    saved_world_size, saved_batch_size, world_size, batch_size, items)
