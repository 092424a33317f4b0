"""Any output rate from a midpoint interpolator: each output time takes the nearest frame of the midpoint grid.

ST-MFNet synthesises only the middle of two frames, so the frames it can make lie on the recursive midpoint grid
of every input interval: the originals, then 1/2, then 1/4 and 1/8. The output frame for a time T in the interval
(t_k, t_k+1) is the grid frame at the nearest eighth, t_k + (t_k+1 - t_k) * m / 8 (ties to the later eighth), so its
time is off by at most 1/16 of the interval; m = 0 and m = 8 are the originals, untouched.

A grid frame is exactly the frame at that position of a full ``--factor 8`` run (video/interpolation.py): the frame
at an odd eighth is the network's middle of the window of four quarter-grid frames around it, each of those
(unless an original) the middle of four half-grid frames, and so on. Only the grid frames an output uses and those
their windows need are computed, each once (cached); scene cuts, static pairs and ``boundary`` act as in the
chained passes (video/gaps.py): a copied gap takes the nearer original, windows stop at cuts and at the ends.

The output times come from a clock: ``rate_clock`` places them at multiples of 1 / rate from the first input time
up to the last; ``factor_clock`` at the times of a ``--factor`` run (used with held frames removed, video/dedup.py).
Input frames are read as the output times need them and dropped once no later window can reach them (a window
reaches back less than three intervals), so memory does not grow with the length of the video.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable, Iterator, Optional, Sequence

from torch import Tensor

from video.gaps import Gap
from common.interpolator import Interpolator
from video.interpolation import BOUNDARY_MODES, PlannedFrame, output_time

GRID_LEVELS = 3  # halves, quarters, eighths
GRID_STEPS = 2 ** GRID_LEVELS
# Grid frames of input gaps this far behind the current one are never needed again (a window reaches back 2.625).
REACH_BACK = 3
# NTSC-style rates are an integer rate times 1000/1001; "59.94" with two or more decimals means 60000/1001.
NTSC_FACTOR = Fraction(1000, 1001)

# The time of output frame ``index`` given the input times read so far and whether they are all; None when not yet
# known (more input needed) or, once complete, when there is no such frame.
Clock = Callable[[int, Sequence[Fraction], bool], Optional[Fraction]]


def parse_rate(text: str) -> Fraction:
    """A frame rate as written on a command line: ``60``, ``60000/1001``, ``12.5``, or ``59.94`` / ``23.976`` /
    ``29.97`` read as 60000/1001, 24000/1001, 30000/1001 (a decimal with two or more places that rounds an
    integer rate times 1000/1001)."""
    text = text.strip()
    try:
        rate = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"expected a frame rate such as 60, 60000/1001 or 59.94, got {text!r}") from None
    if rate <= 0:
        raise ValueError(f"a frame rate must be above 0, got {text!r}")
    decimals = re.fullmatch(r"\d*\.(\d+)", text)
    if decimals and len(decimals.group(1)) >= 2 and rate.denominator != 1:
        ntsc = round(rate / NTSC_FACTOR) * NTSC_FACTOR
        if abs(ntsc - rate) < Fraction(1, 2 * 10 ** len(decimals.group(1))):
            return ntsc
    return rate


def rate_clock(rate: Fraction) -> Clock:
    """Output times at ``t_0 + index / rate``, up to the last input time."""
    def time_of(index: int, input_times: Sequence[Fraction], complete: bool) -> Optional[Fraction]:
        if not input_times:
            return None
        time = input_times[0] + Fraction(index) / rate
        return time if time <= input_times[-1] else None

    return time_of


def factor_clock(factor: int) -> Clock:
    """Output times of a ``--factor`` run: the input times and ``factor - 1`` equal steps between each pair."""
    def time_of(index: int, input_times: Sequence[Fraction], complete: bool) -> Optional[Fraction]:
        try:
            return output_time(input_times, index, factor)
        except IndexError:
            return None

    return time_of


@dataclass(frozen=True)
class GridPoint:
    """A grid frame: input gap ``gap`` (the frame there when ``eighths`` is 0), ``eighths`` of the way to the next."""

    gap: int
    eighths: int

    @property
    def level_index(self) -> tuple[int, int]:
        """(level, index) on the coarsest grid holding the point: level 0 are the inputs, level L has 2^L steps per
        input interval."""
        level, index = GRID_LEVELS, self.gap * GRID_STEPS + self.eighths
        while level > 0 and index % 2 == 0:
            level, index = level - 1, index // 2
        return level, index


@dataclass
class _Input:
    frame: Tensor
    gap: Gap
    time: Fraction


@dataclass
class GridStats:
    """What the grid did: the output frames, the worst time error (seconds, and as a fraction of its interval)."""

    frames_out: int = 0
    worst_error_seconds: Fraction = Fraction(0)
    worst_error_of_interval: Fraction = Fraction(0)


class MidpointGrid:
    """The midpoint grid over planned input frames, computed lazily; see the module docstring.

    ``planned`` yields each input frame with the gap after it, ``times`` holds the time of each planned frame by
    the time the frame is yielded (it may grow further ahead).
    """

    def __init__(self, planned: Iterable[PlannedFrame], times: Sequence[Fraction], interpolate: Interpolator,
                 boundary: str = "pad") -> None:
        if boundary not in BOUNDARY_MODES:
            raise ValueError(f"boundary mode must be one of {BOUNDARY_MODES}, got {boundary!r}")
        self.stream = iter(planned)
        self.times = times
        self.interpolate = interpolate
        self.boundary = boundary
        self.inputs: dict[int, _Input] = {}
        self.cache: dict[tuple[int, int], Tensor] = {}
        self.read_count = 0
        self.complete = False
        self.position = 0  # the input gap of the latest located time

    def read_next(self) -> bool:
        """Read one more input frame; False once there are no more."""
        if self.complete:
            return False
        item = next(self.stream, None)
        if item is None:
            self.complete = True
            return False
        frame, gap = item
        self.inputs[self.read_count] = _Input(frame, gap, self.times[self.read_count])
        self.read_count += 1
        return True

    def exists(self, index: int) -> bool:
        while index >= self.read_count and self.read_next():
            pass
        return index < self.read_count

    def _input(self, index: int) -> _Input:
        if not self.exists(index):
            raise IndexError(f"input frame {index} is past the end")
        return self.inputs[index]

    def locate(self, time: Fraction) -> tuple[GridPoint, Fraction, Fraction]:
        """The grid point nearest ``time`` (at or after the first input), its error in seconds and as a fraction of
        its interval. Times must come in order; reads ahead to the first input after ``time``."""
        while self.exists(self.position + 1) and self.inputs[self.position + 1].time <= time:
            self.position += 1
        gap = self.position
        start = self.inputs[gap].time
        if not self.exists(gap + 1) or time <= start:
            return GridPoint(gap, 0), abs(time - start), Fraction(0)
        interval = self.inputs[gap + 1].time - start
        position = (time - start) / interval
        eighths = math.floor(position * GRID_STEPS + Fraction(1, 2))
        error = abs(position - Fraction(eighths, GRID_STEPS))
        point = GridPoint(gap + 1, 0) if eighths == GRID_STEPS else GridPoint(gap, eighths)
        return point, error * interval, error

    def frame(self, point: GridPoint) -> Tensor:
        return self._frame(*point.level_index)

    def forget_before(self, gap: int) -> None:
        """Drop the inputs and grid frames of gaps before ``gap`` (no later output may need them)."""
        for index in [index for index in self.inputs if index < gap]:
            del self.inputs[index]
        for key in [key for key in self.cache if key[1] >> key[0] < gap]:
            del self.cache[key]

    def _frame(self, level: int, index: int) -> Tensor:
        while level > 0 and index % 2 == 0:
            level, index = level - 1, index // 2
        if level == 0:
            return self._input(index).frame
        if (level, index) not in self.cache:
            self.cache[(level, index)] = self._make(level, index)
        return self.cache[(level, index)]

    def _is_cut_before(self, level: int, index: int) -> bool:
        """Whether the level-``level`` interval (index - 1, index) lies in a cut input gap."""
        return self._input((index - 1) >> level).gap.cut

    def _is_last(self, level: int, index: int) -> bool:
        return index % (1 << level) == 0 and not self.exists((index >> level) + 1)

    def _make(self, level: int, index: int) -> Tensor:
        """The frame at odd ``index`` of level ``level``: the middle of the level-(level - 1) pair around it."""
        steps = 1 << level
        gap_index, offset = divmod(index, steps)
        gap = self._input(gap_index).gap
        if gap.is_copy:  # nearest original, ties to the earlier
            return self._input(gap_index if 2 * offset <= steps else gap_index + 1).frame
        coarser = level - 1
        left = (index - 1) // 2
        right = left + 1
        if self.boundary == "duplicate" and left == 0:
            return self._frame(coarser, left)
        if self.boundary == "duplicate" and self._is_last(coarser, right):
            return self._frame(coarser, right)
        outer_left = left if left == 0 or self._is_cut_before(coarser, left) else left - 1
        outer_right = right if self._is_last(coarser, right) or self._is_cut_before(coarser, right + 1) else right + 1
        window = [self._frame(coarser, position) for position in (outer_left, left, right, outer_right)]
        return self.interpolate(*window).clamp(0, 1)


def frames_at_times(planned: Iterable[PlannedFrame], times: Sequence[Fraction], clock_times: Sequence[Fraction],
                    clock: Clock, interpolate: Interpolator, boundary: str = "pad", stats: Optional[GridStats] = None
                    ) -> Iterator[tuple[Tensor, Fraction]]:
    """(frame, time) for every output time of ``clock``, each frame the nearest grid frame (see the module docstring).

    ``planned`` and ``times`` are the frames the grid is built from and their times; ``clock_times`` are the input
    times the clock counts from (the same list, or with held frames removed, all input times). ``stats`` collects
    the output count and the worst time error.
    """
    stats = GridStats() if stats is None else stats
    grid = MidpointGrid(planned, times, interpolate, boundary)
    if not grid.exists(1):
        raise ValueError(f"frame-rate conversion needs at least 2 frames, got {grid.read_count}")
    index = 0
    while True:
        time = clock(index, clock_times, grid.complete)
        if time is None:
            if grid.read_next():
                continue
            time = clock(index, clock_times, True)
            if time is None:
                return
        point, error, error_of_interval = grid.locate(time)
        if error > stats.worst_error_seconds:
            stats.worst_error_seconds = error
        stats.worst_error_of_interval = max(stats.worst_error_of_interval, error_of_interval)
        stats.frames_out += 1
        yield grid.frame(point), time
        grid.forget_before(point.gap - REACH_BACK)
        index += 1
