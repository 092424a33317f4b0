"""The frozen teacher of phase 2 and the mode it runs in (``distill.py --teacher_mode``).

* ``train`` (the default, the original's): the teacher runs in training mode, so every BatchNorm layer normalises
  with the mean and variance of the current batch (``--batch_size`` crops), not with its stored running statistics.
  That is how the published student was distilled: its targets were batch-normalised teacher frames. The original
  also let those layers update their running statistics, which nothing read; here they stay exactly as loaded
  (each BatchNorm layer runs with ``track_running_stats`` switched off for the call, which normalises with the
  batch statistics and writes nothing), so the teacher checkpoint never drifts.
* ``eval``: the teacher runs in eval mode and normalises with its stored running statistics, as at test time: each
  target depends only on its own item, not on the other items of the batch.

Both modes run without autograd (the original built the teacher's graph, but no gradient of it was ever used).
Under DistributedDataParallel every process holds its own teacher (not wrapped in DDP), so in ``train`` mode each
process normalises with the statistics of its own ``--batch_size`` items, like one GPU of the original with that
batch size; N processes are therefore not the same as one process with N times the batch.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

TEACHER_MODES = ("train", "eval")


@contextmanager
def batch_statistics_only(model: nn.Module) -> Iterator[None]:
    """In training mode, make every BatchNorm layer of ``model`` normalise with batch statistics without updating
    its running statistics or its batch counter, for the duration of the block."""
    norms = [module for module in model.modules() if isinstance(module, _BatchNorm)]
    tracking = [norm.track_running_stats for norm in norms]
    for norm in norms:
        norm.track_running_stats = False
    try:
        yield
    finally:
        for norm, tracked in zip(norms, tracking):
            norm.track_running_stats = tracked


class FrozenTeacher:
    """``teacher(frame1, frame3, frame5, frame7)`` -> the teacher's (B, 3, H, W) frame, in ``mode`` (see above)."""

    def __init__(self, model: nn.Module, mode: str = "train") -> None:
        if mode not in TEACHER_MODES:
            raise ValueError(f"--teacher_mode must be one of {', '.join(TEACHER_MODES)}, got {mode!r}")
        self.model = model.requires_grad_(False)
        self.mode = mode
        self.model.train(mode == "train")

    def __call__(self, frame1: Tensor, frame3: Tensor, frame5: Tensor, frame7: Tensor) -> Tensor:
        with torch.no_grad():
            if self.mode == "eval":
                return self.model.eval()(frame1, frame3, frame5, frame7)
            with batch_statistics_only(self.model):
                return self.model.train()(frame1, frame3, frame5, frame7)["frame1"]
