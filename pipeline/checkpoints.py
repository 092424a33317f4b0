"""Checkpoints of train.py and distill.py: the original per-epoch files and a ``last.pth`` for exact resume.

``out_dir/checkpoint/model_epochNNN.pth`` keeps the original format ``{"epoch", "state_dict"}`` so that
evaluate.py, ``utility.load_checkpoint`` and the original tools load it. ``out_dir/checkpoint/last.pth`` holds
everything a run needs to continue as if it had never stopped: model, optimizer (OBProxSG's phase counters
included), scheduler, the loss's discriminators and their optimizers, the loop's progress, and the torch, CUDA,
numpy and Python random generator states. Every file is written atomically (temporary file + rename), so a crash
mid-save leaves the previous file intact.

In a distributed run rank 0 saves, and the model is saved without its DistributedDataParallel wrapper: no key has
the ``module.`` prefix, so the checkpoints of a distributed run and of a single process are interchangeable
(resuming with another number of processes: ``pipeline/training.py``). The random generator states saved are rank
0's, and a resumed run restores them on every process (which all started from the same seed).
"""
from __future__ import annotations

import logging
import random
from argparse import Namespace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from pipeline.distributed import unwrap_model
from utility import PathType, atomic_save, remove_stale_temporaries

logger = logging.getLogger(__name__)

CHECKPOINT_FOLDER = "checkpoint"
LAST_CHECKPOINT = "last.pth"


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
    args: Namespace,
) -> Path:
    """Write ``last.pth``: every state needed to resume, plus the run's arguments for reference."""
    path = last_checkpoint_path(out_dir)
    atomic_save(
        {
            "model": unwrap_model(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "loss": loss.state_dict(),
            "progress": progress,
            "rng": rng_states(),
            "args": vars(args),
        },
        path,
    )
    return path


def load_last_checkpoint(out_dir: PathType) -> dict[str, Any]:
    """Read ``last.pth`` of a run (on the CPU); a clear error when the run has none. The temporaries of a save that
    was killed half-way are removed first."""
    for temporary in remove_stale_temporaries(checkpoint_dir(out_dir)):
        logger.info("Removed %s, left by a checkpoint write that was interrupted", temporary)
    path = last_checkpoint_path(out_dir)
    if not path.exists():
        raise FileNotFoundError(
            f"--resume: {path} not found; resume needs the --out_dir of a run that saved at least one checkpoint"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


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


def changed_arguments(saved: dict[str, Any], current: Namespace, ignore: tuple[str, ...]) -> dict[str, tuple]:
    """Arguments whose value differs from the resumed run's: {name: (saved, current)}."""
    changes = {}
    for name, value in vars(current).items():
        if name in ignore:
            continue
        previous: Optional[Any] = saved.get(name)
        if previous != value:
            changes[name] = (previous, value)
    return changes
