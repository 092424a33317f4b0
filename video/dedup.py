"""Held frames removed: the distinct frames of a stream, for ``--dedup``.

Animation drawn "on twos" holds each drawing for two frames, and 24 fps film carried in 30 fps video repeats
frames; interpolating between a frame and its copy makes nothing new and the stutter stays. A frame is held when
it is a duplicate (the static-pair test of video/scenes.py) of the last frame kept, so that a slow drift over a long
hold still ends it. The distinct frames keep their own times and the output times stay those of the input
(video/rate_plan.py fills each from the distinct frames around it), so timing and duration are kept. The last
frame is always kept: it ends the video's time span, and its gap from the last distinct frame is a copy.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Iterable, Iterator, Optional, Sequence

from torch import Tensor

from video.scenes import is_static_pair


def drop_held_frames(frames: Iterable[Tensor], input_times: Sequence[Fraction], threshold: float,
                     kept_indices: list[int], kept_times: list[Fraction]) -> Iterator[Tensor]:
    """The frames that are not duplicates of the last frame kept, and the last frame; appends each one's input index
    to ``kept_indices`` and its time (``input_times`` filled as the frames are read) to ``kept_times`` as it is
    yielded."""
    kept: Optional[Tensor] = None
    held: Optional[tuple[int, Tensor]] = None
    for index, frame in enumerate(frames):
        if kept is not None and is_static_pair(kept, frame, threshold):
            held = (index, frame)
            continue
        held = None
        kept = frame
        kept_indices.append(index)
        kept_times.append(input_times[index])
        yield frame
    if held is not None:
        kept_indices.append(held[0])
        kept_times.append(input_times[held[0]])
        yield held[1]
