"""The training loop of train.py (phase 1: OBProxSG compression, or plain training) and distill.py (phase 2:
distillation), entered through :func:`train`.

One epoch is one pass over the training set (Vimeo-90K septuplets and BVI-DVC quintuplets concatenated, as the
original's ``Sampler(iter=True)``) in the seeded order of ``data/sampling.py``, in batches of ``--batch_size``;
after every epoch the loop validates, writes the reports and saves ``model_epochNNN.pth`` and ``last.pth``
(``pipeline/checkpoints.py``). A script gives :func:`train` its network, its loss and its step function; the
wrapping of the network for DistributedDataParallel (``pipeline/distributed.py``) happens here, so the step
function always receives the module that averages gradients across processes.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from common.failures import RUN_FAILURE_STATUS, ScriptError
from data import EpochSampler, build_training_loader, build_training_set
from metrics import calc_psnr
from models.checkpoint import load_checkpoint
from optim import PhaseSwitches, make_optimizer, make_scheduler
from pipeline import distributed
from pipeline.checkpoints import (
    Progress,
    last_checkpoint_path,
    restore_epoch_checkpoint,
    save_epoch_checkpoint,
    save_last_checkpoint,
    start_progress,
)
from pipeline.run import Run, TrainingOptions, write_config
from pipeline.sparsity import append_density, plot_curves, sparsity_report, width_suggestion_lines, write_report
from pipeline.validation import ValidationScores, build_validation_loader, validate_model

logger = logging.getLogger(__name__)

# (model to train with, loss, (frame1, frame3, frame4, frame5, frame7) on the device) -> (loss, predicted frame4).
StepFunction = Callable[[nn.Module, nn.Module, Sequence[Tensor]], tuple[Tensor, Tensor]]


class NonFiniteLossError(ScriptError):
    """The training loss became NaN or infinite; the run stops (exit status 1) before the bad step changes any
    weight."""

    def __init__(self, message: str) -> None:
        super().__init__(message, RUN_FAILURE_STATUS)


@dataclass
class TrainingData:
    """The seeded training loader and its sampler, and the validation loader (this process's share of both)."""

    train_loader: DataLoader
    sampler: EpochSampler
    valid_loader: DataLoader

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)


def build_training_data(run: Run) -> TrainingData:
    """The training sets named by ``--train_sets`` and the Vimeo-90K test list for validation."""
    options = run.options
    num_replicas, rank = distributed.world_size(), distributed.rank()
    try:
        train_set = build_training_set(options.data_dir, options.patch_size, options.train_sets, options.samples_per_epoch)
        valid_loader = build_validation_loader(
            options.data_dir, options.patch_size, options.batch_size, options.num_workers, num_replicas=num_replicas, rank=rank
        )
    except (FileNotFoundError, ValueError) as error:  # a missing set or list, or a list naming missing folders
        raise ScriptError(str(error)) from error
    train_loader, sampler = build_training_loader(
        train_set, options.batch_size, run.seed, options.num_workers, num_replicas=num_replicas, rank=rank
    )
    logger.info("%d training items (%d steps per epoch), %d validation items",
                len(train_set), len(train_loader), len(valid_loader.dataset))
    return TrainingData(train_loader, sampler, valid_loader)


def train(
    run: Run,
    data: TrainingData,
    model: nn.Module,
    loss: nn.Module,
    step: StepFunction,
    *,
    log_points: int,
    report_sparsity: bool,
) -> None:
    """Train ``model`` (as built, on the CPU) with ``loss`` through ``step`` until ``--epochs`` or ``--max_steps``.

    In order: the model and loss onto the run's device (``--sync_bn``, ``--load``), the optimizer and schedule of
    the flags, the progress (restored from ``last.pth`` with ``--resume``), config.txt, and under torchrun the
    DDP wrapper with the loss's discriminators replicated. ``log_points`` is how many loss lines an epoch logs
    (the original: 20 in train.py, 10 in distill.py); ``report_sparsity`` adds the compression report (phase 1).

    A non-finite loss stops the run with :class:`NonFiniteLossError`.
    """
    options, device = run.options, run.device
    model = model.to(device)
    if options.sync_bn:
        model = distributed.use_sync_batchnorm(model, device)
    _load_starting_weights(model, options.load, run.resumed)
    loss = loss.to(device)
    optimizer = make_optimizer(model, options.optimizer, options.lr, options.weight_decay, options.epochs, data.steps_per_epoch)
    scheduler = make_scheduler(optimizer, options.decay_type, options.gamma, options.lr_decay, options.patience)
    logger.info("Loss %s, optimizer %s", loss.extra_repr(), type(optimizer).__name__)

    progress = start_progress(run.flags, run.seed, data.steps_per_epoch, distributed.world_size(), run.resume_state,
                              model=model, optimizer=optimizer, scheduler=scheduler, loss=loss)
    if run.resumed and distributed.is_main_process():
        restore_epoch_checkpoint(options.out_dir, model, progress)
    write_config(options.out_dir, run.flags)
    trained_model = distributed.wrap_model(model, device)
    distributed.replicate_loss(loss)

    loop = TrainingLoop(
        model=model, trained_model=trained_model, step=step, loss=loss, optimizer=optimizer, scheduler=scheduler,
        data=data, device=device, options=options, flags=run.flags, progress=progress, log_points=log_points,
        report_sparsity=report_sparsity,
    )
    loop.run()


def _load_starting_weights(model: nn.Module, path: Optional[str], resumed: bool) -> None:
    """``--load``: start from a checkpoint's weights (ignored when ``--resume`` brings its own)."""
    if path is None:
        return
    if resumed:
        logger.info("--load %s ignored: the weights come from the resumed checkpoint", path)
        return
    if not Path(path).is_file():
        raise ScriptError(f"--load {path} not found; give a checkpoint of {type(model).__name__}")
    try:
        checkpoint = load_checkpoint(model, path)
    except ValueError as error:  # damaged, not a checkpoint, another network's, non-finite weights
        raise ScriptError(f"--load: {error}") from error
    logger.info("Loaded %s (saved at epoch %s)", path, checkpoint.get("epoch", "?"))


@dataclass
class TrainingLoop:
    """Epochs of ``step`` calls, each followed by validation, reports and checkpoints.

    ``model`` is the network itself, validated and saved; ``trained_model`` is what ``step`` trains (``model``, or
    its DDP wrapper in a distributed run, where every process validates its share of the validation set and only
    rank 0 writes files). ``loss`` is saved for its discriminators' state.
    """

    model: nn.Module
    trained_model: nn.Module
    step: StepFunction
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    data: TrainingData
    device: torch.device
    options: TrainingOptions
    flags: dict[str, Any]
    progress: Progress
    log_points: int = 20
    report_sparsity: bool = False

    def __post_init__(self) -> None:
        self.out_dir = Path(self.options.out_dir)
        self.phases = PhaseSwitches(self.optimizer)

    def finished(self) -> bool:
        return self.progress.epoch >= self.options.epochs or self._max_steps_reached()

    def _max_steps_reached(self) -> bool:
        return self.options.max_steps is not None and self.progress.step >= self.options.max_steps

    def run(self) -> None:
        """Train until ``--epochs`` epochs or ``--max_steps`` steps are done; raises NonFiniteLossError."""
        progress = self.progress
        logger.info("********STARTING FROM EPOCH %d (step %d)********", progress.epoch, progress.step)
        if self.finished():
            logger.info("Nothing to do: %d of %d epochs and %d steps (--max_steps %s) already done",
                        progress.epoch, self.options.epochs, progress.step, self.options.max_steps)
        while not self.finished():
            epoch_complete = self.train_epoch()
            self.end_epoch(epoch_complete)
        if self.report_sparsity and progress.history:
            self._log_width_suggestions()

    def train_epoch(self) -> bool:
        """Steps until the epoch ends (True) or ``--max_steps`` is reached (False)."""
        progress, loader = self.progress, self.data.train_loader
        self.model.train()
        self.loss.train()
        self.data.sampler.set_epoch(progress.epoch, start=progress.epoch_step * loader.batch_size)
        log_every = max(progress.steps_per_epoch // self.log_points, 1)
        for frames in loader:
            frames = [frame.to(self.device) for frame in frames]
            self.optimizer.zero_grad()
            loss, prediction = self.step(self.trained_model, self.loss, frames)
            # Over all processes, before any of them steps: they all see the same loss and stop together.
            loss_sum, psnr_sum, psnr_count = distributed.all_reduce_sum(
                [loss.item(), calc_psnr(frames[2], prediction.detach()).sum(), prediction.shape[0]], self.device
            )
            loss_value = loss_sum / distributed.world_size()
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(self._non_finite_message(loss_value))
            loss.backward()
            self.optimizer.step()
            self._log_new_phase()

            progress.step += 1
            progress.epoch_step += 1
            progress.loss_sum += loss_value
            progress.psnr_sum += psnr_sum
            progress.psnr_count += round(psnr_count)
            if progress.epoch_step % log_every == 0:
                logger.info("{:<13s}{:<14s}{:<6s}{:<16s}{:<12s}{:<20.16f}".format(
                    "Train Epoch: ", f"[{progress.epoch + 1}/{self.options.epochs}]", "Step: ",
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
            if self.options.decay_type != "plateau":
                self.scheduler.step()
        distributed.broadcast_buffers(self.model)  # every process scores the model rank 0 saves
        scores = validate_model(self.model, self.data.valid_loader, self.device)
        if epoch_complete and self.options.decay_type == "plateau":
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
        # last.pth first: a run killed between the two writes resumes from it and restores the epoch file.
        save_last_checkpoint(
            self.out_dir, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, loss=self.loss,
            progress=progress.to_dict(), flags=self.flags,
        )
        model_path = save_epoch_checkpoint(self.model, self.out_dir, epoch_number)
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
            append_density(self.out_dir, report["density"], scores.psnr)
        return report["density"]

    def _log_validation(self, epoch_number: int, record: dict[str, Any], epoch_complete: bool) -> None:
        stopped = "" if epoch_complete else f" (stopped by --max_steps at step {record['step']})"
        message = (f"Train Epoch: [{epoch_number}/{self.options.epochs}]  Train PSNR: {record['train_psnr']:<3.2f}  "
                   f"Valid PSNR: {record['valid_psnr']:<3.2f}  Valid SSIM: {record['valid_ssim']:<3.2f}")
        if "density" in record:
            message += f"  Density: {record['density']:<3.2f}"
        logger.info(message + stopped)

    def _log_new_phase(self) -> None:
        kind = self.phases.new_phase()
        if kind is not None:
            logger.info("OBProxSG: %s steps from step %d (epoch %d)", kind, self.progress.step + 1,
                        self.progress.epoch + 1)

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
