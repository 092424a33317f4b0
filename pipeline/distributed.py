"""Data-parallel training over several GPUs or machines with torchrun and DistributedDataParallel (DDP).

``torchrun --nproc_per_node N train.py ...`` starts one process per device and describes the job in environment
variables (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). :func:`process_group` reads them, gives the
process its device (GPU number LOCAL_RANK, or the CPU) and joins the process group (NCCL on CUDA, Gloo on the
CPU); without those variables the run is the single process it always was and every helper here does nothing.

Every process takes ``--batch_size`` items per step (its own share of the epoch, ``pipeline/training.py``), so a
step of N processes sees N x ``--batch_size`` items. What keeps such a step equal to one process's step on all
those items:

* the trained network is wrapped in DDP, which averages its gradients across the processes during backward;
* terms summed over the batch (the original's Laplacian loss) are weighted by N, since the gradient of a sum over
  the whole batch is the *sum* of the processes' gradients, N times their average; batch means (L1, MSE, Charb,
  the adversarial terms) are right as they are;
* the discriminators of adversarial terms train inside the loss call with their own optimizers and several
  forward passes per backward, which DDP does not support; a hook averages their gradients the same way before
  each of their steps;
* statistics (training loss and PSNR, validation sums and counts) are summed over the processes.

Batch normalisation normalises with each process's own batch unless ``--sync_bn`` (``torch.nn.SyncBatchNorm``,
CUDA only); DDP copies rank 0's running statistics to every process before each forward, and
:func:`broadcast_buffers` does so before validation, so every process scores the model that rank 0 saves. Only
rank 0 (:func:`is_main_process`) writes logs, reports and checkpoints.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from losses import Adversarial, LaplacianLoss, Loss
from pipeline.cli import select_device

# The variables torchrun sets that this module needs; all or none of them must be present.
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# Loss terms summed (not averaged) over the batch.
BATCH_SUMMED_TERMS = (LaplacianLoss,)


@dataclass(frozen=True)
class Launch:
    """This process's place in a torchrun job."""

    rank: int
    local_rank: int
    world_size: int


def torchrun_launch(environ: Mapping[str, str] = os.environ) -> Optional[Launch]:
    """The job described by torchrun's environment variables, or None when the process was not started by
    torchrun; a ValueError names what is missing or wrong in a partial or inconsistent environment."""
    present = [name for name in TORCHRUN_VARIABLES if name in environ]
    if not present:
        return None
    missing = [name for name in TORCHRUN_VARIABLES if name not in environ]
    if missing:
        raise ValueError(
            f"the environment sets {', '.join(present)} but not {', '.join(missing)}: start the script with "
            "torchrun (which sets all of them), or unset them for a single-process run"
        )
    try:
        rank, local_rank, world_size = (int(environ[name]) for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    except ValueError as error:
        raise ValueError(f"RANK, LOCAL_RANK and WORLD_SIZE must be integers: {error}") from error
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, LOCAL_RANK={local_rank}, "
                         f"WORLD_SIZE={world_size}")
    return Launch(rank, local_rank, world_size)


def launch_device(launch: Launch, device: str) -> torch.device:
    """The device of a torchrun process for ``--device``: GPU number LOCAL_RANK (``--gpu_id`` does not apply),
    or the CPU."""
    if device != "cpu" and torch.cuda.is_available() and launch.local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK {launch.local_rank} has no GPU: {torch.cuda.device_count()} CUDA device(s) visible; start "
            "at most that many processes per node (torchrun --nproc_per_node), or use --device cpu"
        )
    return select_device(device, launch.local_rank)


@contextlib.contextmanager
def process_group(device: str = "auto", gpu_id: int = 0) -> Iterator[torch.device]:
    """Yield this process's device; under torchrun, inside a process group that is destroyed on the way out
    (also after an error). ``device`` and ``gpu_id`` are the scripts' ``--device`` and ``--gpu_id``."""
    launch = torchrun_launch()
    if launch is None:
        yield select_device(device, gpu_id)
        return
    run_device = launch_device(launch, device)
    if run_device.type == "cuda":
        torch.cuda.set_device(run_device)
    dist.init_process_group(
        backend="nccl" if run_device.type == "cuda" else "gloo",
        rank=launch.rank,
        world_size=launch.world_size,
        device_id=run_device if run_device.type == "cuda" else None,
    )
    try:
        yield run_device
    finally:
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 outside a distributed run)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes (1 outside a distributed run)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True for the process that logs and writes files: rank 0, or the only process."""
    return rank() == 0


def setup_secondary_logging() -> logging.Logger:
    """Logging of a process other than rank 0: errors only, to stderr, marked with the rank (rank 0 logs the run)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"[rank {rank()}] %(asctime)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.ERROR)
    return logging.getLogger("stmfnet")


def broadcast_int(value: int, device: torch.device) -> int:
    """Rank 0's ``value`` on every process (e.g. a random seed drawn by each)."""
    if not is_distributed():
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(tensor, src=0)
    return int(tensor.item())


def all_reduce_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """The sums of ``values`` over all processes, in float64 (the values themselves outside a distributed run)."""
    if not is_distributed():
        return [float(value) for value in values]
    tensor = torch.tensor([float(value) for value in values], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def check_sync_batchnorm(device: torch.device) -> None:
    """``--sync_bn`` is for GPUs: ``torch.nn.SyncBatchNorm`` refuses CPU tensors."""
    if device.type != "cuda":
        raise ValueError(f"--sync_bn needs CUDA devices (torch.nn.SyncBatchNorm synchronises GPU tensors only); "
                         f"this process runs on {device}")


def use_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``--sync_bn``: the model with every BatchNorm layer replaced by ``torch.nn.SyncBatchNorm`` (same parameter
    and buffer objects, same state-dict keys), which normalises with the statistics of all processes' batches."""
    check_sync_batchnorm(device)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """The model to train with: DDP around ``model`` in a distributed run, ``model`` itself otherwise.

    DDP copies rank 0's parameters and buffers to every process here, and averages the gradients in backward.
    Some parameters never receive a gradient (the original's unused GridNet laterals ``lateral_0_2`` and
    ``lateral_0_3`` of ``scale_synthesis``), hence ``find_unused_parameters``; they keep no gradient, as in a
    single process. Keep using ``model`` for validation and saving: its keys have no ``module.`` prefix.
    """
    if not is_distributed():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper (whose state-dict keys would carry a ``module.`` prefix)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def broadcast_buffers(model: nn.Module) -> None:
    """Give every process rank 0's buffers (batch-norm running statistics), which each process's last training
    forward updated with its own batch."""
    if not is_distributed():
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def _average_gradients(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    count = world_size()
    for group in optimizer.param_groups:
        for param in group["params"]:
            if param.grad is not None:
                dist.all_reduce(param.grad)  # a sum: Gloo has no average
                param.grad.div_(count)


def replicate_loss(loss: nn.Module) -> None:
    """Prepare a loss module (``losses.Loss`` or ``DistillationLoss``) for a distributed run, in place: rank 0's
    discriminators on every process, their gradients averaged before each of their steps, and batch-summed
    terms weighted by the number of processes (see the module docstring)."""
    if not is_distributed():
        return
    count = world_size()
    for tensor in [*loss.parameters(), *loss.buffers()]:
        dist.broadcast(tensor.data, src=0)
    for module in loss.modules():
        if isinstance(module, Adversarial):
            module.optimizer.register_step_pre_hook(_average_gradients)
        if isinstance(module, Loss):
            module.weights = [
                weight * count if isinstance(term, BATCH_SUMMED_TERMS) else weight
                for weight, term in zip(module.weights, module.loss_module)
            ]
