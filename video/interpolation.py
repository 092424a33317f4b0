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

Every pass is a generator holding a window of four frames, so memory does not depend on the video's length.
Interpolated frames are clipped to [0, 1]; input frames pass through untouched.
"""
from __future__ import annotations

import math
from collections import deque
from itertools import islice
from fractions import Fraction
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

Interpolator = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
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
    """An (H, W, 3) uint8 RGB frame as a (1, 3, H, W) tensor in [0, 1]."""
    tensor = torch.tensor(frame, device=device)  # a copy: decoded arrays may be read-only
    return tensor.permute(2, 0, 1).unsqueeze(0).to(dtype) / 255


def tensor_to_frame(tensor: Tensor) -> np.ndarray:
    """A (1, 3, H, W) tensor in [0, 1] as an (H, W, 3) uint8 RGB frame (clipped, rounded to nearest)."""
    quantized = tensor[0].float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return quantized.permute(1, 2, 0).cpu().numpy()


def _windows(frames: Iterable[Tensor]) -> Iterator[tuple[tuple[Tensor, ...], bool, bool]]:
    """(I0, I1, I2, I3) around each consecutive pair, the ends repeated, with flags (first pair, last pair)."""
    stream = iter(frames)
    head = list(islice(stream, 2))
    if len(head) < 2:
        raise ValueError(f"frame-rate conversion needs at least 2 frames, got {len(head)}")
    window = deque((head[0], head[0], head[1]), maxlen=4)
    is_first = True
    for frame in stream:
        window.append(frame)
        yield tuple(window), is_first, False
        is_first = False
    window.append(window[-1])
    yield tuple(window), is_first, True


def double_frame_rate(frames: Iterable[Tensor], interpolate: Interpolator, boundary: str = "pad"
                      ) -> Iterator[Tensor]:
    """One 2x pass: each frame, then the middle of it and the next one (the last frame ends the stream)."""
    if boundary not in BOUNDARY_MODES:
        raise ValueError(f"boundary mode must be one of {BOUNDARY_MODES}, got {boundary!r}")
    window = None
    for window, is_first, is_last in _windows(frames):
        yield window[1]
        if boundary == "duplicate" and is_first:
            yield window[1]
        elif boundary == "duplicate" and is_last:
            yield window[2]
        else:
            yield interpolate(*window).clamp(0, 1)
    yield window[2]


def raise_frame_rate(frames: Iterable[Tensor], interpolate: Interpolator, factor: int, boundary: str = "pad"
                     ) -> Iterator[Tensor]:
    """``factor`` x the frame rate by log2(factor) chained 2x passes (see the module docstring)."""
    check_factor(factor)
    stream: Iterable[Tensor] = frames
    for _ in range(int(math.log2(factor))):
        stream = double_frame_rate(stream, interpolate, boundary)
    return iter(stream)


def model_interpolator(model: nn.Module, fp16: bool = False) -> Interpolator:
    """A network as an interpolator: no autograd, and with ``fp16`` CUDA autocast to half precision."""
    def run(frame0: Tensor, frame1: Tensor, frame2: Tensor, frame3: Tensor) -> Tensor:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=fp16):
            return model(frame0, frame1, frame2, frame3).to(frame1.dtype)

    return run
