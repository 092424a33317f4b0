"""The scoring loop behind evaluate.py: interpolate every item of a test set, score it, save it, and average the
scores the way the original ``data/testsets.py`` did.

A *predictor* maps the four input frames (each (1, 3, H, W) in [0, 1]) to the middle frame: the network itself, or
one of the trivial baselines (``average`` of the two centre inputs, ``repeat`` of the earlier one), which go
through the same path so that every results table can carry them.

Averaging (the original's semantics): the scores of the items of one sequence are averaged first, then the
sequence means are averaged. For DAVIS and VFITex a sequence holds many windows; for UCF101 and SNU-FILM every
item is its own sequence, so the set mean is the plain mean over items. ``results.txt`` is written by
``pipeline/results_file.py``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from common.failures import ScriptError
from data import QuintupletTestSet
from common.files import PathType
from metrics import LPIPS, calc_psnr, calc_ssim
from metrics.quality import SSIM_WINDOW_SIZE
from pipeline.comparison import save_comparison_grid
from common.safe_write import atomic_save_image
from common.interpolator import Interpolator

logger = logging.getLogger(__name__)

METRIC_NAMES = ("PSNR", "SSIM", "LPIPS")
# The smallest frame side each metric can score: SSIM's window; LPIPS's AlexNet trunk (an 11x11 stride-4 convolution
# and a 3x3 stride-2 max pool must leave at least 3x3 for the second max pool: 31 pixels).
MIN_FRAME_SIDE = {"PSNR": 1, "SSIM": SSIM_WINDOW_SIZE, "LPIPS": 31}
BASELINES = ("average", "repeat")
GRID_FOLDER = "grids"

# Four (1, 3, H, W) input frames I0, I1, I2, I3 -> the (1, 3, H, W) frame between I1 and I2.
# (target, output) -> one score per image, shape (B,).
Metric = Callable[[Tensor, Tensor], Tensor]


def baseline_predictor(kind: str) -> Interpolator:
    """Frame averaging (the mean of I1 and I2) or frame repetition (I1) as a predictor."""
    if kind == "average":
        return lambda frame0, frame1, frame2, frame3: (frame1 + frame2) / 2
    if kind == "repeat":
        return lambda frame0, frame1, frame2, frame3: frame1.clone()
    raise ValueError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")


def build_metrics(names: list[str], device: torch.device) -> dict[str, Metric]:
    """The metric functions called ``names`` (PSNR, SSIM, LPIPS), ready on ``device``.

    Building LPIPS loads its AlexNet weights, so calling this before the loop makes missing weights fail at
    start-up (FileNotFoundError saying where to put them) instead of mid-run.
    """
    unknown = [name for name in names if name not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRIC_NAMES)}")
    metrics: dict[str, Metric] = {}
    for name in dict.fromkeys(names):  # each once, in the order asked
        if name == "PSNR":
            metrics[name] = calc_psnr
        elif name == "SSIM":
            metrics[name] = calc_ssim
        else:
            metrics[name] = LPIPS().to(device)
    return metrics


@dataclass
class ItemResult:
    """Scores of one interpolated frame, the time the predictor took for it and the time its frames took to load
    (read, decode, move to the device)."""

    name: str
    sequence: str
    output_file: str
    scores: dict[str, float]
    seconds: float
    load_seconds: float = 0.0


@dataclass
class EvaluationSummary:
    """Per-item results and their averages.

    sequences: mean scores of each sequence, in test-set order.
    mean: the mean of the sequence means (the original's ``Average``).
    mean_over_items: the plain mean over items (equal to ``mean`` when every sequence has one item).
    """

    metric_names: list[str]
    items: list[ItemResult]
    sequences: dict[str, dict[str, float]] = field(default_factory=dict)
    mean: dict[str, float] = field(default_factory=dict)
    mean_over_items: dict[str, float] = field(default_factory=dict)

    @property
    def seconds_per_frame(self) -> float:
        """Mean predictor time per frame, leaving out the first frame (warm-up) when there are others."""
        times = [item.seconds for item in self.items]
        return float(np.mean(times[1:] if len(times) > 1 else times))


def _mean_scores(results: list[ItemResult], metric_names: list[str]) -> dict[str, float]:
    return {name: float(np.mean([result.scores[name] for result in results])) for name in metric_names}


def summarize(items: list[ItemResult], metric_names: list[str]) -> EvaluationSummary:
    """Average per sequence, then over sequences (see the module docstring)."""
    if not items:
        raise ValueError("no items to summarize")
    by_sequence: dict[str, list[ItemResult]] = {}
    for item in items:
        by_sequence.setdefault(item.sequence, []).append(item)
    sequences = {sequence: _mean_scores(results, metric_names) for sequence, results in by_sequence.items()}
    mean = {name: float(np.mean([scores[name] for scores in sequences.values()])) for name in metric_names}
    return EvaluationSummary(
        metric_names=list(metric_names),
        items=items,
        sequences=sequences,
        mean=mean,
        mean_over_items=_mean_scores(items, metric_names),
    )


def save_image_pixels(frame: Tensor) -> np.ndarray:
    """A (3, H, W) frame in [0, 1] as (H, W, 3) uint8 pixels exactly as the original's ``torchvision.utils.save_image``
    made them: floor(x * 255 + 0.5), clamped to 0..255, in the frame's dtype. Ties round up, where the metrics'
    ``quantize`` rounds them to even, so a saved pixel can be one level above the one that was scored."""
    return frame.detach().mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def save_frame(frame: Tensor, path: PathType) -> None:
    """A (3, H, W) frame in [0, 1] as an 8-bit PNG, as the original saved it (see :func:`save_image_pixels`);
    written atomically."""
    atomic_save_image(Image.fromarray(np.ascontiguousarray(save_image_pixels(frame))), path)


def output_files(test_set: QuintupletTestSet, save_grid: bool) -> list[str]:
    """The frames (and grids) :func:`evaluate` writes, relative to its ``output_dir``."""
    files = [item.output_file for item in test_set.items]
    if save_grid:
        files += [f"{GRID_FOLDER}/{item.name}.png" for item in test_set.items]
    return files


def _image_size(path: Path, item_name: str) -> tuple[int, int]:
    """The size of the image at ``path``, after checking its structure (for PNG: every chunk's checksum, which finds
    a truncated file) without decoding its pixels."""
    try:
        with Image.open(path) as image:
            image.verify()
            return image.size
    except (OSError, SyntaxError) as error:  # PIL reports some damaged PNG chunks as SyntaxError
        raise ScriptError(f"{path} (item {item_name}) is damaged or not an image ({error}); replace or remove it")


def check_frames(test_set: QuintupletTestSet, metric_names: list[str]) -> None:
    """Before any frame is interpolated, refuse items whose files are damaged or not images, whose frames differ in
    size, or whose frames are smaller than a metric can score (no pixel is decoded)."""
    min_side = max(MIN_FRAME_SIDE[name] for name in metric_names)
    sizes: dict[Path, tuple[int, int]] = {}
    for item in test_set.items:
        for path in item.frame_paths:
            if path not in sizes:
                sizes[path] = _image_size(path, item.name)
        item_sizes = {sizes[path] for path in item.frame_paths}
        if len(item_sizes) > 1:
            listing = ", ".join(f"{path.name} {width}x{height}" for path in item.frame_paths
                                for width, height in [sizes[path]])
            raise ScriptError(f"item {item.name}: its frames differ in size ({listing}); every frame of an item "
                              f"must have one size")
        width, height = sizes[item.frame_paths[0]]
        if item.half_crop:
            width, height = width // 2, height // 2
        if min(width, height) < min_side:
            limiting = max(metric_names, key=lambda name: MIN_FRAME_SIDE[name])
            raise ScriptError(f"item {item.name}: frames of {width}x{height} are too small for {limiting} (at least "
                              f"{min_side}x{min_side}); use larger frames or leave {limiting} out of --metrics")


def _load_item(test_set: QuintupletTestSet, index: int) -> list[Tensor]:
    """The frames of item ``index``; a frame that cannot be decoded (e.g. a truncated file) stops the run, named."""
    try:
        frames, _ = test_set[index]
    except (OSError, ValueError) as error:  # the frame reader names the file
        raise ScriptError(f"item {test_set.items[index].name}: {error}; replace or remove that file") from error
    return frames


def _predict_timed(predict: Interpolator, inputs: list[Tensor], device: torch.device) -> tuple[Tensor, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    output = predict(*inputs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return output, time.perf_counter() - start


def evaluate(
    test_set: QuintupletTestSet,
    predict: Interpolator,
    metrics: dict[str, Metric],
    device: torch.device,
    output_dir: Optional[PathType] = None,
    save_grid: bool = False,
    progress: bool = True,
) -> EvaluationSummary:
    """Interpolate, score and (with ``output_dir``) save every item of ``test_set``, one item in memory at a time.

    Outputs go to ``output_dir/<item.output_file>`` (the original's file names); with ``save_grid`` a comparison
    image also goes to ``output_dir/grids/<item name>.png``. Runs under ``torch.inference_mode``; put a model in
    eval mode before wrapping it in ``predict``.
    """
    if save_grid and output_dir is None:
        raise ValueError("save_grid needs an output_dir")
    results: list[ItemResult] = []
    totals = dict.fromkeys(metrics, 0.0)
    bar = tqdm(range(len(test_set)), desc=type(test_set).__name__, unit="frame", disable=not progress)
    with torch.inference_mode():
        for index in bar:
            item = test_set.items[index]
            load_start = time.perf_counter()
            frames = [frame.unsqueeze(0).to(device) for frame in _load_item(test_set, index)]
            load_seconds = time.perf_counter() - load_start
            target = frames[2]
            output, seconds = _predict_timed(predict, [frames[0], frames[1], frames[3], frames[4]], device)
            if output.shape != target.shape:
                raise ValueError(f"{item.name}: prediction {tuple(output.shape)} vs target {tuple(target.shape)}")
            non_finite = int((~torch.isfinite(output)).sum())
            if non_finite:
                logger.warning("%s: the output holds %d NaN or infinite values (broken weights or inputs); its "
                               "scores are not numbers", item.name, non_finite)
            scores = {name: float(metric(target, output)[0]) for name, metric in metrics.items()}
            results.append(ItemResult(item.name, item.sequence, item.output_file, scores, seconds, load_seconds))
            logger.debug("%s: %s in %.3f s", item.name, scores, seconds)

            if output_dir is not None:
                save_frame(output[0], Path(output_dir) / item.output_file)
            if save_grid:
                note = f"{scores['PSNR']:.2f} dB" if "PSNR" in scores else None
                grid_path = Path(output_dir) / GRID_FOLDER / f"{item.name}.png"
                save_comparison_grid(grid_path, frames[1][0], frames[3][0], output[0], target[0], note)

            for name, score in scores.items():
                totals[name] += score
            bar.set_postfix({name: f"{total / len(results):.4g}" for name, total in totals.items()})
    return summarize(results, list(metrics))
