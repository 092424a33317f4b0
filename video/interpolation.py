"""Raising the frame rate of a frame stream 2x, 4x or 8x with a four-frame interpolator.

One 2x pass keeps every input frame and inserts, between each consecutive pair (I1, I2), the interpolator's
middle frame of the window (I0, I1, I2, I3): N frames become 2N - 1, the originals at the even positions. 4x and
8x chain two and three passes, each reading the previous pass's output, so the second pass forms its windows
from the already doubled sequence: four frames equally spaced at the new rate, as the model expects (its inputs
are at t = -3, -1, +1, +3 of the output time scale). N frames become factor * (N - 1) + 1.

Boundary pairs (the first and the last) lack an outer neighbour. ``boundary="pad"`` (default) completes their
windows by repeating the first and last frame, (I0, I0, I1, I2) and (I_{N-3}, I_{N-2}, I_{N-1}, I_{N-1}), so
every gap is interpolated. ``boundary="duplicate"`` reproduces the teacher's ``interpolate_yuv.py``, which
interpolated only the pairs with two real neighbours and filled the first gap with a copy of the first frame and
the last gap with a copy of the last frame (at 4x and 8x every pass does so).

Scene cuts and static (duplicate) pairs: every frame travels with the ``Gap`` that follows it (video/gaps.py).
A copied gap is never interpolated, and no window reaches across a cut: each shot is windowed as a video of its
own, its end frames repeated as ``boundary="pad"`` does at the ends of the video (whatever ``boundary`` is; that
option concerns only the video's own ends). The gaps are halved with the frames, so the later passes of 4x and
8x keep both.

Every pass is a generator holding a window of four frames, so memory does not depend on the video's length.
Interpolated frames are clipped to [0, 1]; input frames pass through untouched.
"""
from __future__ import annotations

import math
from fractions import Fraction
from itertools import chain, islice
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from common.interpolator import Interpolator
from video.gaps import INTERPOLATE, Gap

FACTORS = (2, 4, 8)
BOUNDARY_MODES = ("pad", "duplicate")


def check_factor(factor: int) -> None:
    if factor not in FACTORS:
        raise ValueError(f"frame-rate factor must be one of {FACTORS}, got {factor}")


def output_frame_count(input_count: int, factor: int) -> int:
    """Frames produced from ``input_count`` frames: every gap gets ``factor - 1`` new frames."""
    check_factor(factor)
    return factor * (input_count - 1) + 1


def output_time(input_times: Sequence[Fraction], index: int, factor: int) -> Fraction:
    """Time of output frame ``index``: an original keeps its input's time, a new frame sits at its fraction of the
    gap between its two neighbours (halfway at 2x; the chained halves of 4x and 8x land on quarters and eighths).
    Needs the times of the inputs up to the frame after the gap, which the passes have read by then."""
    gap, step = divmod(index, factor)
    if step == 0:
        return input_times[gap]
    start, end = input_times[gap], input_times[gap + 1]
    return start + (end - start) * step / factor


def frame_to_tensor(frame: np.ndarray, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
                    ) -> Tensor:
    """An (H, W, 3) RGB frame, uint8, uint16 (full scale 65535) or float in [0, 1], as a (1, 3, H, W) tensor in
    [0, 1]."""
    scale = np.iinfo(frame.dtype).max if np.issubdtype(frame.dtype, np.integer) else 1
    if frame.dtype == np.uint16:  # torch has no uint16 arithmetic
        frame = frame.astype(np.int32)
    tensor = torch.tensor(frame, device=device)  # a copy: decoded arrays may be read-only
    return tensor.permute(2, 0, 1).unsqueeze(0).to(dtype) / scale


def tensor_to_frame(tensor: Tensor, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """A (1, 3, H, W) tensor in [0, 1] as an (H, W, 3) RGB frame of ``dtype``, clipped: uint8 or uint16 rounded to
    nearest, float32 unrounded."""
    pixels = tensor[0].float().clamp(0, 1).permute(1, 2, 0)
    if np.dtype(dtype) == np.float32:
        return pixels.cpu().numpy()
    top = np.iinfo(dtype).max
    return pixels.mul(top).round().to(torch.int32).cpu().numpy().astype(dtype)


PlannedFrame = tuple[Tensor, Gap]  # a frame and the gap that follows it (ignored after the last frame)


def _windows(frames: Iterable[PlannedFrame]) -> Iterator[tuple[tuple[Tensor, ...], Gap, bool, bool]]:
    """(I0, I1, I2, I3) around each consecutive pair with the pair's gap and flags (first pair, last pair).

    A window stops at the ends of the stream and at cuts: the missing outer frame is the pair's own frame repeated.
    """
    stream = iter(frames)
    head = list(islice(stream, 2))
    if len(head) < 2:
        raise ValueError(f"frame-rate conversion needs at least 2 frames, got {len(head)}")
    (left, gap), (right, right_gap) = head
    outer_left = left
    is_first = True
    for following, following_gap in chain(stream, [(None, None)]):
        is_last = following is None
        outer_right = right if is_last or right_gap.cut else following
        yield (outer_left, left, right, outer_right), gap, is_first, is_last
        outer_left = right if gap.cut else left
        left, gap, right, right_gap = right, right_gap, following, following_gap
        is_first = False


def double_planned_frame_rate(frames: Iterable[PlannedFrame], interpolate: Interpolator, boundary: str = "pad"
                              ) -> Iterator[PlannedFrame]:
    """One 2x pass over planned frames: each frame, then the middle of it and the next one, interpolated or
    copied as its gap says (the last frame ends the stream); the new frames carry the halves of the gap."""
    if boundary not in BOUNDARY_MODES:
        raise ValueError(f"boundary mode must be one of {BOUNDARY_MODES}, got {boundary!r}")
    window = gap = None
    for window, gap, is_first, is_last in _windows(frames):
        first_half, second_half = gap.halves()
        yield window[1], first_half
        if gap.is_copy:
            middle = gap.middle_copy(window[1], window[2])
        elif boundary == "duplicate" and is_first:
            middle = window[1]
        elif boundary == "duplicate" and is_last:
            middle = window[2]
        else:
            middle = interpolate(*window).clamp(0, 1)
        yield middle, second_half
    yield window[2], INTERPOLATE  # no gap follows the last frame


def raise_planned_frame_rate(frames: Iterable[PlannedFrame], interpolate: Interpolator, factor: int,
                             boundary: str = "pad") -> Iterator[Tensor]:
    """``factor`` x the frame rate of planned frames by log2(factor) chained 2x passes; yields the frames."""
    check_factor(factor)
    stream: Iterable[PlannedFrame] = frames
    for _ in range(int(math.log2(factor))):
        stream = double_planned_frame_rate(stream, interpolate, boundary)
    return (frame for frame, _ in stream)


def double_frame_rate(frames: Iterable[Tensor], interpolate: Interpolator, boundary: str = "pad"
                      ) -> Iterator[Tensor]:
    """One 2x pass interpolating every gap: each frame, then the middle of it and the next one."""
    return raise_frame_rate(frames, interpolate, 2, boundary)


def raise_frame_rate(frames: Iterable[Tensor], interpolate: Interpolator, factor: int, boundary: str = "pad"
                     ) -> Iterator[Tensor]:
    """``factor`` x the frame rate, every gap interpolated (see the module docstring)."""
    return raise_planned_frame_rate(((frame, INTERPOLATE) for frame in frames), interpolate, factor, boundary)


def model_interpolator(model: nn.Module, fp16: bool = False) -> Interpolator:
    """A network as an interpolator: no autograd, and with ``fp16`` CUDA autocast to half precision."""
    def run(frame0: Tensor, frame1: Tensor, frame2: Tensor, frame3: Tensor) -> Tensor:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=fp16):
            return model(frame0, frame1, frame2, frame3).to(frame1.dtype)

    return run
