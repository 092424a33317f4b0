"""``results.txt`` byte for byte in the layout the original ``data/testsets.py`` wrote for each test set.

Every line is ``"{label:<15s} -- {scores}"``, where ``scores`` is the dict of the metrics asked for, each rounded to
3 decimals and printed as numpy 1.x printed a float64 (the shortest repr, e.g. ``{'PSNR': 31.234, 'SSIM': 0.95}``).
Then, per test set:

* UCF101 and SNU-FILM: one line per item, the ``Average`` line, and a blank line.
* VFITex: one line per sequence (the mean of its windows), then the ``Average`` line.
* DAVIS: one line per sequence followed by a tab and ``Average time: T``, T being the seconds spent so far on all
  the windows of the sequences up to this one divided by their number of windows (a running mean); then the
  ``Average`` line, ``Average average time: S`` with S the mean over sequences of each sequence's total seconds,
  and a blank line. The time of a window is what the original's timed loop held: reading its five frames, moving
  them to the device and the forward pass (scoring and saving are not timed; on a GPU the forward is synchronised,
  which the original did not do).

Rounding follows the original's types: a per-item score was a Python float (Python's ``round``, correctly
rounded), a mean came from ``np.mean`` (numpy's ``round``, which scales by 1000 and rounds half to even, so that
e.g. 50.4945 prints as 50.494 where Python's ``round`` gives 50.495).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pipeline.evaluation import EvaluationSummary

DECIMALS = 3
ITEM_LINES = "items"
SEQUENCE_LINES = "sequences"
TIMED_SEQUENCE_LINES = "timed_sequences"
# Test set (the original class name) -> layout of its results.txt.
RESULTS_LAYOUTS = {
    "Ucf101_quintuplet": ITEM_LINES,
    "Snufilm_easy_quintuplet": ITEM_LINES,
    "Snufilm_medium_quintuplet": ITEM_LINES,
    "Snufilm_hard_quintuplet": ITEM_LINES,
    "Snufilm_extreme_quintuplet": ITEM_LINES,
    "VFITex_quintuplet": SEQUENCE_LINES,
    "Davis90_quintuplet": TIMED_SEQUENCE_LINES,
}


def _scores(scores: dict[str, float], from_numpy_mean: bool) -> str:
    if from_numpy_mean:
        rounded = {name: float(np.round(np.float64(value), DECIMALS)) for name, value in scores.items()}
    else:
        rounded = {name: round(float(value), DECIMALS) for name, value in scores.items()}
    return str(rounded)


def _line(label: str, scores: dict[str, float], from_numpy_mean: bool) -> str:
    return "{:<15s} -- {}".format(label, _scores(scores, from_numpy_mean))


def results_text(summary: EvaluationSummary, dataset: str) -> str:
    """The text of ``results.txt`` for ``dataset`` (one of ``RESULTS_LAYOUTS``)."""
    if dataset not in RESULTS_LAYOUTS:
        raise ValueError(f"no results.txt layout for {dataset!r}; known: {', '.join(RESULTS_LAYOUTS)}")
    layout = RESULTS_LAYOUTS[dataset]
    average = _line("Average", summary.mean, from_numpy_mean=True)
    if layout == ITEM_LINES:
        lines = [_line(item.name, item.scores, from_numpy_mean=False) for item in summary.items]
        return "".join(line + "\n" for line in lines) + average + "\n\n"
    if layout == SEQUENCE_LINES:
        lines = [_line(sequence, scores, from_numpy_mean=True) for sequence, scores in summary.sequences.items()]
        return "".join(line + "\n" for line in lines) + average + "\n"

    text = ""
    sequence_seconds: list[float] = []
    sequence_windows: list[int] = []
    for sequence, scores in summary.sequences.items():
        windows = [item for item in summary.items if item.sequence == sequence]
        sequence_seconds.append(sum(item.load_seconds + item.seconds for item in windows))
        sequence_windows.append(len(windows))
        running = np.sum(sequence_seconds) / np.sum(sequence_windows)
        text += _line(sequence, scores, from_numpy_mean=True) + "\tAverage time: {}\n".format(float(running))
    return text + average + "\nAverage average time: {}\n\n".format(float(np.mean(sequence_seconds)))
